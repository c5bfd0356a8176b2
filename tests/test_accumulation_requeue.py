"""A requeue under gradient accumulation saves after an optimizer step, never in the middle of an accumulation
window: the requeued run resumes to bitwise the weights and losses of the uninterrupted run."""

import os
import signal

import pytest
import torch
from helpers.cli import SMALL, added_callback, tiny_cifar_args
from helpers.runs import assert_same_training
from helpers.slurm import fake_scontrol
from lightning import Callback

from lc_lightning.cli import build_cli
from lc_lightning.run_directory import RunDirectory

# 14 training images in batches of 2, 3 to a window: optimizer steps after batches 2, 5 and 6 (a partial window)
ACCUMULATE = 3
TINY = [*SMALL, "--model.network.init_args.width=4", "--data.train_subset=14", "--data.batch_size=2"]


class SignalAtBatch(Callback):
    """Send this process SIGUSR1 (what SLURM sends before a time limit) as batch ``batch`` (counted from 0)
    of training epoch ``epoch`` starts, in a fit that did not resume from a checkpoint."""

    def __init__(self, epoch: int, batch: int) -> None:
        self.epoch = epoch
        self.batch = batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if (trainer.current_epoch, batch_idx) == (self.epoch, self.batch) and trainer.ckpt_path is None:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_a_requeue_in_the_middle_of_an_accumulation_window_saves_after_its_step_and_resumes_bitwise(
    tiny_cifar10, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    calls = fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    args = tiny_cifar_args(
        tiny_cifar10[0], *TINY, "--trainer.max_epochs=1", f"--trainer.accumulate_grad_batches={ACCUMULATE}",
        "--trainer.log_every_n_steps=1",
    )  # fmt: skip
    build_cli(["fit", *args])  # uninterrupted: version_0
    run = RunDirectory(tmp_path / "logs" / "cifar10_e32" / "version_1")
    requeue = added_callback("lc_lightning.callbacks.RequeueOnSignal", checkpoint=str(run.requeue_checkpoint))
    signal_at = added_callback("test_accumulation_requeue.SignalAtBatch", epoch=0, batch=4)
    with pytest.raises(SystemExit):  # Requeued
        build_cli(["fit", *args, requeue, signal_at])
    assert calls.read_text() == "requeue 77\n"
    saved = torch.load(run.requeue_checkpoint, weights_only=False)
    # signalled as batch 4 began, in the middle of the window of batches 3-5: saved after that window's step
    assert (saved["epoch"], saved["global_step"]) == (0, 2)
    assert saved["CIFAR10DataModule"] == {"train_position": [0, 6]}
    build_cli(["fit", "--config", str(run.config_file), "--ckpt_path=last"])
    assert_same_training(run.path, run.path.parent / "version_0", steps=3)
