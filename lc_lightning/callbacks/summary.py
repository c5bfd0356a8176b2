"""SummarizeFit: what a fit reached and what to run next, printed when it ends or is interrupted."""

import time

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lc_lightning.callbacks.record import BEST_TRACKED as ACCURACY
from lc_lightning.run_directory import RunDirectory, shown

ROBUST_ACCURACY = "val/fgsm_acc"


class SummarizeFit(Callback):
    """Print a fit's result on the global-zero process: when it ends, the last and best
    ``val/acc`` (the best as RecordRun keeps it in status.json, over every part of a resumed run),
    the last ``val/fgsm_acc`` if it is logged, the run directory and the command that evaluates its
    newest checkpoint (or that none was saved); on Ctrl-C or SIGTERM, the command that resumes it, or,
    for a ``new`` run (created by this start) stopped before its first step, that nothing was kept.
    Paths in the commands are shell-quoted."""

    def __init__(self, run: RunDirectory, new: bool = False) -> None:
        self.run = run
        self.new = new
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
        run = shown(self.run.path)
        checkpoint = self.run.newest_checkpoint()
        evaluate = "no checkpoint was saved" if checkpoint is None else f"lc-train test --ckpt_path {shown(checkpoint)}"
        lines += [f"  {'run':<13}{run} (tensorboard --logdir {run})", f"  {'evaluate':<13}{evaluate}"]
        print("\n".join(lines))

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if not trainer.is_global_zero or not isinstance(exception, (KeyboardInterrupt, SIGTERMException)):
            return
        if self.new and trainer.global_step == 0:
            print("lc-train: interrupted before the first training step; nothing was kept")
            return
        latest = self.run.latest_checkpoint()
        start = "from the start (no checkpoint was saved yet)" if latest is None else f"from {shown(latest)}"
        print(
            f"lc-train: interrupted at epoch {trainer.current_epoch}, step {trainer.global_step}. "
            f"Resume {start} with:\n  {resume_command(self.run)}"
        )


def resume_command(run: RunDirectory) -> str:
    """The lc-train command that resumes ``run`` from its newest checkpoint (or starts it again where it
    has none), shell-quoted."""
    option = run.resume_option() or "last"
    return f"lc-train fit --config {shown(run.config_file)} --ckpt_path {option if option == 'last' else shown(option)}"
