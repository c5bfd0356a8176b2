import pytest
from helpers.cli import CONFIGS, cifar10_e32_args, config_args, run_lc_train, usage_error
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.callbacks import FreezeSpatialConvs
from lc_lightning.cli import build_cli
from lc_lightning.nn import lc_blocks, lc_weights


def test_cifar10_e32_trains_with_fast_dev_run_on_tiny_cifar10(tiny_cifar10, tmp_path, monkeypatch):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", *cifar10_e32_args(root, "--trainer.fast_dev_run=true")])
    assert cli.trainer.global_step == 1
    blocks = [conv for _, conv in lc_blocks(cli.model)]
    assert len(blocks) == 19 and {b.parametrizations.weight[0].expansion for b in blocks} == {32}
    assert any(isinstance(c, FreezeSpatialConvs) for c in cli.trainer.callbacks)
    assert all(not lc_weights(b)[0].requires_grad and lc_weights(b)[1].requires_grad for b in blocks)
    assert cli.model.hparams.num_classes == 10 and cli.model.mean.shape == (1, 3, 1, 1)


def test_a_short_run_logs_checkpoints_and_validates_from_the_checkpoint(tiny_cifar10, tmp_path, monkeypatch):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    small = [
        "--model.network.init_args.depth=8",
        "--model.network.init_args.expansion=2",
        "--trainer.precision=32-true",
    ]
    build_cli(["fit", *cifar10_e32_args(root, *small, "--trainer.max_epochs=2")])
    run_dir = tmp_path / "logs" / "cifar10_e32" / "version_0"
    assert (run_dir / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    events = EventAccumulator(str(run_dir))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss_step", "train/acc_step", "val/loss", "val/acc", "lr-PaperSGD"} <= scalars
    lrs = [event.value for event in events.Scalars("lr-PaperSGD")]
    assert lrs[0] == pytest.approx(0.01) and lrs == sorted(lrs, reverse=True)  # cosine decay per step
    logged_acc = events.Scalars("val/acc")[-1].value
    ckpt = str(run_dir / "checkpoints" / "last.ckpt")
    cli = build_cli(["validate", *cifar10_e32_args(root, *small, f"--ckpt_path={ckpt}")])
    assert cli.trainer.callback_metrics["val/acc"].item() == pytest.approx(logged_acc)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model.lrr=0.1"], "lrr"),
        (["--model.network.init_args.expansion=0"], "expansion must be an integer >= 1"),
        (["--model.network.init_args.expansion=-3"], "expansion must be an integer >= 1"),
    ],
)
def test_bad_arguments_exit_nonzero_with_a_clear_message(args, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = usage_error(
        capsys, "fit", "--config", str(CONFIGS / "cifar10_e32.yaml"), *args, "--trainer.fast_dev_run=true"
    )
    assert message in err
    assert "Traceback" not in err


def test_an_unknown_key_in_a_config_file_is_reported(tmp_path, capsys):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  weight_decau: 0.1\n")
    err = usage_error(
        capsys, "fit", "--config", str(CONFIGS / "cifar10_e32.yaml"), "--config", str(config), "--print_config"
    )
    assert "weight_decau" in err


def test_missing_dataset_exits_with_the_path_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_lc_train(
        "fit", "--config", str(CONFIGS / "cifar10_e32.yaml"), f"--data.data_dir={tmp_path / 'no-data'}",
        "--data.download=false", "--trainer.accelerator=cpu", "--trainer.fast_dev_run=true",
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{tmp_path / 'no-data' / 'cifar-10-batches-py'}" in result.stderr
    assert "--data.download=true" in result.stderr and "Traceback" not in result.stderr


def test_a_corrupt_training_jpeg_is_named_without_a_traceback(tiny_imagenet, tmp_path, monkeypatch, capsys):
    root, wnids = tiny_imagenet
    corrupt = root / "train" / wnids[1] / f"{wnids[1]}_train_2.JPEG"
    corrupt.write_bytes(b"not a JPEG")
    monkeypatch.chdir(tmp_path)
    err = usage_error(
        capsys, "fit", *config_args(CONFIGS / "table2" / "baseline_learnable.yaml"), f"--data.data_dir={root}",
        "--data.num_classes=3", "--data.batch_size=16", "--data.num_workers=1",  # one batch of all 9 images
        "--trainer.accelerator=cpu", "--trainer.fast_dev_run=true",
    )  # fmt: skip
    assert f"lc-train: error: cannot decode image {corrupt}" in err
    assert "Traceback" not in err
