"""Faults lose nothing: atomic checkpoints, clear errors for bad checkpoints, a NaN loss stops the run."""

import itertools
import json
import multiprocessing
import os
import random
import shutil
import signal
import tempfile
import time
from pathlib import Path

import pytest
import torch
from helpers.cli import CONFIGS, config_args, run_lc_train, tiny_cifar_args, usage_error
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist

from lc_lightning.checkpoint import AtomicCheckpointIO
from lc_lightning.cli import build_cli


def write_forever(path, first_step: int) -> None:
    """Save checkpoints of ~64 MB numbered first_step, first_step + 1, ... to ``path``, forever."""
    io, weights = AtomicCheckpointIO(), torch.randn(16, 1024, 1024)
    for step in itertools.count(first_step):
        io.save_checkpoint({"step": step, "weights": weights}, path)


def another_filesystem(path: Path) -> Path | None:
    """A writable directory on another filesystem than ``path`` (e.g. the tmpfs /dev/shm), or None."""
    device = os.stat(path).st_dev
    for candidate in ("/dev/shm", "/run/shm", "/var/tmp", "/tmp"):
        if os.path.isdir(candidate) and os.access(candidate, os.W_OK) and os.stat(candidate).st_dev != device:
            return Path(candidate)
    return None


@pytest.mark.slow
def test_a_process_killed_while_writing_never_leaves_a_torn_checkpoint(tmp_path, monkeypatch):
    # Temporary files go to another filesystem than the checkpoint: a writer that writes one there
    # and moves it over the checkpoint copies it into place, and a kill during the copy tears the
    # checkpoint (Lightning's TorchCheckpointIO does: with it this test failed in each of 5 runs).
    elsewhere = another_filesystem(tmp_path)
    if elsewhere is None:
        assert not os.environ.get("CI"), f"no filesystem other than that of {tmp_path} to put TMPDIR on"
        pytest.skip(f"no filesystem other than that of {tmp_path} to put TMPDIR on")
    temporary = Path(tempfile.mkdtemp(dir=elsewhere))
    monkeypatch.setenv("TMPDIR", str(temporary))
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))  # the forked writers inherit it
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"step": 0, "weights": torch.zeros(1)}, path)
    rng = random.Random(0)
    steps = []
    try:
        for kill in range(20):
            writer = multiprocessing.get_context("fork").Process(target=write_forever, args=(path, 1000 * (kill + 1)))
            writer.start()
            time.sleep(rng.uniform(0.05, 0.5))
            os.kill(writer.pid, signal.SIGKILL)  # most likely in the middle of torch.save
            writer.join()
            steps.append(io.load_checkpoint(path)["step"])  # raises if the file is torn
    finally:
        shutil.rmtree(temporary)
    assert steps == sorted(steps) and steps[-1] > 1000  # each load is the newest complete write
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["last.ckpt"]


def test_a_truncated_or_missing_checkpoint_is_named(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(root, "--trainer.max_epochs=1")])
    good = tmp_path / "logs" / "cifar10_e32" / "version_0" / "checkpoints" / "last.ckpt"
    truncated = tmp_path / "truncated.ckpt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    err = usage_error(capsys, "validate", *tiny_cifar_args(root), f"--ckpt_path={truncated}")
    assert f"cannot read checkpoint {truncated}: it is truncated or corrupt" in err
    err = usage_error(capsys, "fit", *tiny_cifar_args(root), f"--ckpt_path={tmp_path / 'absent.ckpt'}")
    assert f"no checkpoint file at {tmp_path / 'absent.ckpt'}" in err


@pytest.mark.parametrize("read_late", [False, True], ids=["read-at-once", "read-one-step-late"])
@pytest.mark.parametrize(
    "nan_from, where, last_good_step",
    # 40 training images in batches of 8: 5 steps per epoch. Step 4 is the last of epoch 0, whose
    # end saves last.ckpt: read late, its NaN must still come out before that checkpoint is written.
    [(7, "step 7 (epoch 1, batch 2)", 5), (4, "step 4 (epoch 0, batch 4)", None)],
)  # fmt: skip
def test_a_nan_loss_stops_training_naming_the_step_and_no_checkpoint_after_it_is_written(
    tiny_cifar10, tmp_path, monkeypatch, capsys, read_late, nan_from, where, last_good_step
):
    """On a GPU the loss is read one step late (lc_lightning.loss_check); here that path runs on CPU."""
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("lc_lightning.module.reads_loss_late", lambda device: read_late)
    nan_network = [
        "--model.network=helpers.faulty_networks.NaNAfterSteps",
        f"--model.network.init_args.nan_from={nan_from}",
    ]
    args = [*tiny_cifar_args(root), *nan_network, "--trainer.max_epochs=3"]
    args.remove("--model.network.init_args.depth=8")
    err = usage_error(capsys, "fit", *args)
    assert f"the training loss is not finite (nan on this rank) at {where}" in err
    checkpoints = tmp_path / "logs" / "cifar10_e32" / "version_0" / "checkpoints"
    saved = [torch.load(path, weights_only=False) for path in checkpoints.glob("*.ckpt")]
    assert {checkpoint["global_step"] for checkpoint in saved} == ({last_good_step} if last_good_step else set())
    for checkpoint in saved:
        assert all(torch.isfinite(value).all() for value in checkpoint["state_dict"].values())
    if last_good_step:
        cli = build_cli(["validate", *args, f"--ckpt_path={checkpoints / 'last.ckpt'}"])
        assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])


@needs_fashion_mnist
@pytest.mark.slow
def test_a_dataset_missing_on_one_ddp_process_stops_every_process_with_its_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))  # helpers.faulty_data
    start = time.monotonic()
    run = run_lc_train(
        "fit", *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
        "--data=helpers.faulty_data.MissingOnOneRank", "--data.missing_rank=1",
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.num_workers=0", "--trainer.accelerator=cpu",
        "--trainer.strategy=ddp", "--trainer.devices=2",
    )  # fmt: skip
    assert time.monotonic() - start < 60
    assert run.returncode == 2
    missing = f"MissingOnOneRank: no dataset at {FASHION_MNIST_DEBIAN}/node-local (absent on this node)"
    assert f"lc-train: error: {missing}" in run.stderr  # process 1, the one without the data
    assert f"lc-train: error: process 1 stopped: {missing}" in run.stderr  # process 0
    assert "Traceback" not in run.stderr


ADAMW_LR = ["--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=-0.1"]
LINEAR_LR = "--model.lr_scheduler=torch.optim.lr_scheduler.LinearLR"  # its second argument is a factor in (0, 1]


@pytest.mark.parametrize(
    "args, message",
    [
        (ADAMW_LR, "--model.optimizer: Invalid learning rate: -0.1"),
        (["--model.optimizer.momentum=0"], "--model.optimizer: Nesterov momentum requires a momentum and zero "
         "dampening"),
        ([LINEAR_LR], "--model.lr_scheduler: Starting multiplicative factor expected to be greater than 0 and less "
         "or equal to 1 (it is given the optimizer and the run's length, 5 optimizer steps, as its first two "
         "arguments)"),
    ],
)  # fmt: skip
def test_optimizer_arguments_torch_refuses_end_in_one_line_naming_the_option(
    tiny_cifar10, tmp_path, monkeypatch, capsys, args, message
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, "fit", *tiny_cifar_args(root, "--trainer.max_epochs=1", *args))
    assert err == f"lc-train: error: {message}\n"


def test_weights_broken_by_the_last_steps_of_an_epoch_stop_the_fit_before_its_checkpoint(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    """Every training loss was finite, but the last step's update left the weights infinite: the
    validation loss tells, and the run fails rather than finishing with NaN in its record."""
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(
        tiny_cifar10[0], "--data.train_subset=16", "--trainer.max_epochs=2", "--model.optimizer.lr=1e6"
    )
    err = usage_error(capsys, "fit", *args, "--trainer.callbacks=null")
    assert err == (
        "lc-train: error: the validation loss is not finite after step 2 (epoch 0): the weights diverged in the "
        "epoch's last steps; training stopped and the checkpoints written so far are kept. A lower "
        "--model.optimizer.lr or --trainer.precision=32-true may help.\n"
    )
    run = tmp_path / "logs" / "cifar10_e32" / "version_0"
    status = json.loads((run / "status.json").read_text(), parse_constant=pytest.fail)  # strict JSON
    assert status["state"] == "failed" and status["error"].startswith("TrainingDivergedError: the validation loss")
    assert status["metrics"]["val/loss"] == "nan" and not (run / "checkpoints").exists()
