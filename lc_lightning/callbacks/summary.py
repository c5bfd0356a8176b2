"""SummarizeFit: what a fit reached and what to run next, printed when it ends or is interrupted."""

import os
import time
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lc_lightning.callbacks.record import BEST_TRACKED as ACCURACY
from lc_lightning.run_directory import LAST_CHECKPOINT, RunDirectory

ROBUST_ACCURACY = "val/fgsm_acc"


class SummarizeFit(Callback):
    """Print a fit's result on the global-zero process: when it ends, the last and best
    ``val/acc`` (the best as RecordRun keeps it in status.json, over every part of a resumed run),
    the last ``val/fgsm_acc`` if it is logged, the run directory and the
    command that evaluates it; on Ctrl-C or SIGTERM, the command that resumes it. Runs after
    RecordRun, which removes a run interrupted before its first step."""

    def __init__(self, run: RunDirectory) -> None:
        self.run = run
        self._started = time.monotonic()

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        minutes, seconds = divmod(round(time.monotonic() - self._started), 60)
        took = f"{minutes}m{seconds:02d}s"
        epochs = f"{trainer.current_epoch} epoch{'s' if trainer.current_epoch != 1 else ''}"
        lines = [f"lc-train: fit ended after {epochs}, {trainer.global_step} steps ({took})"]
        metrics = trainer.callback_metrics
        status = self.run.status()
        if ACCURACY in metrics:
            best = ""
            if status is not None and status.best_val_acc is not None:
                best = f", best {status.best_val_acc:.4f} (epoch {status.best_epoch})"
            lines.append(f"  {ACCURACY:<13}last {metrics[ACCURACY].item():.4f}{best}")
        if ROBUST_ACCURACY in metrics:
            lines.append(f"  {ROBUST_ACCURACY:<13}last {metrics[ROBUST_ACCURACY].item():.4f}")
        run = _shown(self.run.path)
        lines += [
            f"  {'run':<13}{run} (tensorboard --logdir {run})",
            f"  {'evaluate':<13}lc-train test --ckpt_path {_shown(self.run.checkpoint_dir / LAST_CHECKPOINT)}",
        ]
        print("\n".join(lines))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if not self.run.config_file.is_file():
            print("lc-train: interrupted before the first training step; nothing was kept")
            return
        newest = self.run.newest_checkpoint()
        start = f"from {_shown(newest)}" if newest is not None else "from the start (no checkpoint was saved yet)"
        print(
            f"lc-train: interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}. "
            f"Resume {start} with:\n  {self._resume_command()}"
        )

    def _resume_command(self) -> str:
        return f"lc-train fit --config {_shown(self.run.config_file)} --ckpt_path last"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory where it is inside it, else absolute."""
    relative = os.path.relpath(path.resolve())
    return str(path.resolve()) if relative.startswith("..") else relative
