"""The analysis callbacks in a real run: TensorBoard scalars and images, and validate from a checkpoint."""

import pytest
import torch
from helpers.cli import CONFIGS, config_args
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.analysis import combined_filters, normalized_entropy
from lc_lightning.callbacks.filters import filter_grid, heatmap_figure
from lc_lightning.cli import build_cli


def test_filter_grid_draws_one_tile_per_filter_in_0_1():
    rgb = filter_grid(torch.randn(16, 3, 3, 3), scale=8)  # 16 RGB tiles of 24 px in one row, 2 px padding
    assert rgb.shape == (3, 24 + 4, 16 * (24 + 2) + 2) and 0 <= rgb.min() and rgb.max() <= 1
    grey = filter_grid(torch.randn(4, 2, 5, 5), scale=2)  # 8 grey tiles of 10 px
    assert grey.shape == (3, 10 + 4, 8 * (10 + 2) + 2)
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])


def test_the_heatmap_figure_shows_each_share_of_the_variance_on_a_colour_scale():
    heatmap = torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])  # the centre holds 20 %
    figure = heatmap_figure(heatmap, "3x3")
    axes, colour_bar = figure.axes
    shown = axes.images[0]
    assert shown.get_array()[1, 1] == pytest.approx(20) and shown.get_array()[0, 0] == pytest.approx(10)
    assert shown.get_clim() == pytest.approx((10, 20))  # the colours span the smallest to the largest share
    assert shown.get_cmap().name == "viridis" and "%" in colour_bar.get_ylabel()
    assert sorted(text.get_text() for text in axes.texts) == ["10.0"] * 8 + ["20.0"]


@needs_fashion_mnist
def test_a_short_run_logs_every_measurement_and_validate_reports_them_for_the_checkpoint(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = [
        *config_args(CONFIGS / "sweeps" / "base.yaml"), "--data", str(CONFIGS / "data" / "fashion_mnist.yaml"),
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.train_subset=256", "--data.val_subset=128",
        "--data.batch_size=64", "--data.num_workers=0", "--model.network.init_args.depth=8",
        "--model.network.init_args.expansion=4", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    cli = build_cli(["fit", *args, "--trainer.max_epochs=2"])
    run_dir = tmp_path / "logs" / "sweeps" / "base" / "version_0"
    events = EventAccumulator(str(run_dir), size_guidance={"images": 0})
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"val/acc", "val/fgsm_acc", "filters/entropy_first", "filters/entropy_last"} <= scalars
    assert {"filters/first_layer", "filters/spatial_variance_3x3"} <= set(events.Tags()["images"])
    assert len(events.Scalars("val/fgsm_acc")) == 2  # every epoch
    filters = list(combined_filters(cli.model).values())
    assert events.Scalars("filters/entropy_first")[-1].value == pytest.approx(normalized_entropy(filters[0]))
    assert events.Scalars("filters/entropy_last")[-1].value == pytest.approx(normalized_entropy(filters[-1]))
    fgsm, clean = events.Scalars("val/fgsm_acc")[-1].value, events.Scalars("val/acc")[-1].value

    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    capsys.readouterr()
    build_cli(["validate", *args, f"--ckpt_path={checkpoint}"])
    # Lightning's table of the validation metrics: one "<metric>   <value>" row each.
    rows = [line.replace("│", " ").split() for line in capsys.readouterr().out.splitlines()]
    table = {row[0]: float(row[1]) for row in rows if len(row) == 2 and "/" in row[0]}
    assert table["val/acc"] == pytest.approx(clean, abs=1e-4)
    assert table["val/fgsm_acc"] == pytest.approx(fgsm, abs=1e-4)
    assert table["filters/entropy_first"] == pytest.approx(events.Scalars("filters/entropy_first")[-1].value, abs=1e-4)
