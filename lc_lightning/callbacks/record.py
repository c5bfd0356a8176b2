"""RecordRun: a run directory's status.json follows its fit or evaluation (lc_lightning.run_directory)."""

import contextlib
from dataclasses import replace

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lc_lightning.run_directory import RunDirectory, RunStatus, describe_error

BEST_TRACKED = "val/acc"
"""The metric whose best value and epoch status.json keeps (RunStatus.best_val_acc, best_epoch)."""


class RecordRun(Callback):
    """Keep the status.json of ``run`` (a run directory, or an evaluation's) on the global-zero process.

    Fit: "running" once training starts (after a checkpoint it resumes from is restored) and after every
    epoch, "finished" when it ends normally (max_epochs, max_steps, max_time or a callback's stop),
    "interrupted" on Ctrl-C or SIGTERM (a scheduler's time limit, scancel, a requeue), "failed" with the
    exception otherwise (a full disk or an unwritable directory in words). Each write keeps the epoch and
    step reached, the number of processes and the last value of every logged scalar, on top of those the
    run recorded before it was resumed, and the best ``val/acc`` with its epoch. A fit of a finished run
    that fails before it trains a step (a truncated checkpoint, say) leaves its record as it was.
    Validate and test: "running", then "finished" with their metrics, and the epoch and step of the
    checkpoint they evaluate (``reached``, as the checkpoint records them) where it is known.
    """

    def __init__(self, run: RunDirectory, reached: tuple[int | None, int | None] = (None, None)) -> None:
        self.run = run
        self.reached = reached
        self._trained = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage != "fit":
            self._write(trainer, "running")

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "running")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        self._trained = True

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "running")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "finished")

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.state.fn == "validate":
            self._write(trainer, "finished")

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "finished")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero:
            return
        before = self.run.status()
        if before is not None and before.state == "finished" and not self._trained:
            return
        state = "interrupted" if isinstance(exception, (KeyboardInterrupt, SIGTERMException)) else "failed"
        with contextlib.suppress(OSError):  # a full disk that even the kept room could not help: the error says it
            self._write(trainer, state, error=describe_error(exception))

    def _write(self, trainer: Trainer, state: str, error: str | None = None) -> None:
        if not trainer.is_global_zero:
            return
        before = self.run.status()
        epoch, step = self.reached
        status = RunStatus(
            state,
            error=error,
            epoch=trainer.current_epoch if epoch is None else epoch,
            global_step=trainer.global_step if step is None else step,
            world_size=trainer.world_size,
            metrics=_scalars(trainer),
        )
        if before is not None and (before.global_step or 0) > trainer.global_step and trainer.state.fn == "fit":
            # a resumed run that failed before its checkpoint was restored: it is still where it was
            status = replace(before, state=state, error=error)
        elif before is not None:
            status = replace(
                status,
                metrics={**before.metrics, **status.metrics},
                best_val_acc=before.best_val_acc,
                best_epoch=before.best_epoch,
            )
        accuracy = trainer.callback_metrics.get(BEST_TRACKED)
        improved = accuracy is not None and (status.best_val_acc is None or accuracy.item() > status.best_val_acc)
        if trainer.state.fn == "fit" and improved:
            status = replace(status, best_val_acc=accuracy.item(), best_epoch=trainer.current_epoch)
        self.run.write_status(status)


def _scalars(trainer: Trainer) -> dict[str, float]:
    """The last value of every scalar the module and its callbacks logged."""
    return {
        name: value.item()
        for name, value in trainer.callback_metrics.items()
        if isinstance(value, torch.Tensor) and value.numel() == 1
    }
