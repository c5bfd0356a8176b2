"""RecordRunStatus: the run directory's status.json follows the fit (lc_lightning.run_status)."""

from pathlib import Path

from lightning import Callback, LightningModule, Trainer

from lc_lightning.run_status import RunStatus, write_status

# What a scheduler's stop or Ctrl-C raises: the run was stopped, not broken, and can be resumed.
INTERRUPTIONS = ("KeyboardInterrupt", "SIGTERMException")


class RecordRunStatus(Callback):
    """Write ``status.json`` into the trainer's ``default_root_dir`` (the run directory) on the
    global-zero process: "running" when fit starts, "finished" when it ends normally (max_epochs,
    max_steps, max_time or a callback's stop), "failed" with the exception when it raises, and
    "interrupted" on Ctrl-C or SIGTERM (a scheduler's time limit, scancel or requeue)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            self._write(trainer, "running")

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._write(trainer, "finished")

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        state = "interrupted" if type(exception).__name__ in INTERRUPTIONS else "failed"
        self._write(trainer, state, error=f"{type(exception).__name__}: {exception}")

    @staticmethod
    def _write(trainer: Trainer, state: str, error: str | None = None) -> None:
        if trainer.is_global_zero:
            status = RunStatus(state, error=error, epoch=trainer.current_epoch, global_step=trainer.global_step)
            write_status(Path(trainer.default_root_dir), status)
