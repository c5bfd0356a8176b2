"""The filter statistics and images the analysis callbacks log are those of the weights the network applies.

For every LC form, a short fit moves W = P S away from its start and from S; the entropies, the image of
the first layer and the spatial variance heatmap that FilterDiversity and FilterImages hand to the logger
must then equal the pure functions applied to W as read back from the convolutions' outputs, which
neither the callbacks nor ``combined_filters`` take part in.
"""

from functools import partial

import pytest
import torch
from lightning import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lc_lightning.analysis import normalized_entropy, spatial_variance
from lc_lightning.callbacks import FilterDiversity, FilterImages
from lc_lightning.callbacks.filters import filter_grid
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import LC_FORMS, lc_parametrization, lc_weights, make_lc_block
from lc_lightning.nn.draws import draws
from lc_lightning.optim import PaperSGD

FORMS = ("folded", "explicit", "preconditioned", "gram")


class TwoLCBlocks(nn.Module):
    """Two 3 x 3 LC-Blocks of one form, 3 -> 4 (E = 1: S has W's shape, 4 x 3 x 3 x 3) and 4 -> 5
    (E = 3, with a bias), then global average pooling and a linear head."""

    def __init__(self, num_classes: int, in_channels: int, form: str) -> None:
        super().__init__()
        self.first = make_lc_block(nn.Conv2d(in_channels, 4, 3, padding=1, bias=False), 1, form=form)
        self.second = make_lc_block(nn.Conv2d(4, 5, 3, padding=1, bias=True), 3, form=form)
        self.head = nn.Linear(5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.second(F.relu(self.first(x))))
        return self.head(x.mean(dim=(2, 3)))


def applied_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The 3 x 3 weight (c_out, c_in, 3, 3) the stride-1, padding-1 convolution ``conv`` applies, read from its
    outputs: one input per weight position, a single 1 in a 3 x 3 image, seen at the output's centre pixel
    (the output at 0 taken off, which holds the bias)."""
    c_in = conv.in_channels
    impulses = torch.eye(c_in * 9).view(c_in * 9, c_in, 3, 3)
    with torch.no_grad():
        centre = (conv(impulses) - conv(torch.zeros(1, c_in, 3, 3)))[:, :, 1, 1]  # (c_in * 9, c_out)
    return centre.T.reshape(-1, c_in, 3, 3).contiguous()


def start_and_spatial(conv: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(W0 = P0 S, S) of an LC-Block, drawn again from its seed as the block drew them."""
    block = lc_parametrization(conv)
    shape = (conv.out_channels, conv.in_channels, 3, 3)
    drawn = draws(torch.Size(shape), block.expansion, block.init, block.seed, torch.float32)
    spatial_rows, pointwise_columns = zip(*drawn, strict=True)
    spatial, pointwise = torch.cat(spatial_rows), torch.cat(pointwise_columns, dim=1)
    return (pointwise @ spatial.flatten(1)).view(shape), spatial


class Recorded:
    """What reached the TensorBoard writer's add_image and add_figure."""

    def __init__(self, logger: TensorBoardLogger, monkeypatch) -> None:
        self.images, self.figures = [], []
        writer = logger.experiment
        monkeypatch.setattr(writer, "add_image", lambda tag, image, step: self.images.append((tag, image)))
        monkeypatch.setattr(writer, "add_figure", lambda tag, figure, step, close: self.figures.append((tag, figure)))


def shares(heatmap: torch.Tensor) -> torch.Tensor:
    """Each cell's share of the heatmap's total in %, as the logged figure shows it."""
    heatmap = heatmap.double()
    return 100 * heatmap / heatmap.sum()


def test_every_form_is_covered():
    assert set(FORMS) == set(LC_FORMS)


@pytest.mark.parametrize("form", FORMS)
def test_the_logged_filter_statistics_and_images_are_those_of_the_weights_the_network_applies(
    form, tmp_path, monkeypatch
):
    torch.manual_seed(0)
    frozen = form == "preconditioned"
    # W's step with frozen S is its gradient times S^T S, of small eigenvalues here: a larger lr moves it as far
    optimizer = partial(PaperSGD, lr=10.0 if frozen else 0.5)
    network = partial(TwoLCBlocks, form=form)
    model = ImageClassifier(network, 3, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), frozen, optimizer=optimizer)
    images, labels = torch.rand(16, 3, 8, 8), torch.arange(16) % 3
    data = DataLoader(TensorDataset(images, labels), batch_size=8)
    logger = TensorBoardLogger(tmp_path, name="", version=0)
    recorded = Recorded(logger, monkeypatch)
    trainer = Trainer(
        accelerator="cpu", max_epochs=2, logger=logger, callbacks=[FilterDiversity(all_layers=True), FilterImages()],
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(model, data, data)
    fitted = dict(trainer.callback_metrics)
    trainer.test(model, data)

    convs = {"network.first": model.network.first, "network.second": model.network.second}
    applied = {name: applied_weight(conv) for name, conv in convs.items()}
    for name, conv in convs.items():
        start, spatial = start_and_spatial(conv)
        if lc_parametrization(conv).holds_factors:  # the probe reads P @ S
            spatial, pointwise = lc_weights(conv)
            torch.testing.assert_close(applied[name], (pointwise @ spatial.flatten(1)).view_as(applied[name]))
        # S, W0 and W differ in what is measured (by far more than the tolerance below): measuring S or W0 fails
        entropy = normalized_entropy(applied[name])
        assert abs(normalized_entropy(spatial) - entropy) > 1e-4 and abs(normalized_entropy(start) - entropy) > 1e-4

    expected = {f"filters/entropy/{name}": normalized_entropy(weight) for name, weight in applied.items()}
    expected["filters/entropy_first"] = expected["filters/entropy/network.first"]
    expected["filters/entropy_last"] = expected["filters/entropy/network.second"]
    for metrics in (fitted, trainer.callback_metrics):  # the end of the fit's last validation, then of test
        for key, value in expected.items():
            assert metrics[key].item() == pytest.approx(value, rel=1e-5, abs=1e-6), key

    # the fit's last validation and the test drew the same filters
    assert [tag for tag, _ in recorded.images] == ["filters/first_layer"] * 3  # epochs 1 and 2, then test
    assert [tag for tag, _ in recorded.figures] == ["filters/spatial_variance_3x3"] * 3
    expected_heatmap = shares(spatial_variance(applied.values())[(3, 3)])
    for (_, image), (_, figure) in list(zip(recorded.images, recorded.figures, strict=True))[1:]:
        torch.testing.assert_close(image, filter_grid(applied["network.first"]), rtol=0, atol=1e-5)
        shown = torch.from_numpy(figure.axes[0].images[0].get_array().data.astype("float64"))
        torch.testing.assert_close(shown, expected_heatmap, rtol=1e-5, atol=1e-6)
