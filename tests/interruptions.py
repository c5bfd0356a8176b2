"""Callbacks that interrupt a run the way a stopped or requeued job is (importable by class path)."""

import os
import signal
import time
from pathlib import Path

from lightning import Callback


class StopAfterEpoch(Callback):
    """Stop fit after training epoch ``epoch`` (counted from 0), as if the job ended there;
    the epoch's checkpoints are still written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True


class SignalAtStep(Callback):
    """Send this process SIGUSR1 (what SLURM sends before a time limit) as the batch of global step
    ``step`` starts, in the middle of the training step's work rather than at its end."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)


class PauseAtStep(Callback):
    """As the batch of global step ``step`` starts, write the file ``marker`` and wait until SIGUSR1
    has reached the run's RequeueOnSignal, so that a test can signal a job at a step of its choice.
    A requeued job (``SLURM_RESTART_COUNT`` > 0) does not pause."""

    def __init__(self, step: int, marker: str, timeout: float = 120) -> None:
        self.step = step
        self.marker = Path(marker)
        self.timeout = timeout

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step or int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:
            return
        self.marker.write_text(str(self.step))
        deadline = time.monotonic() + self.timeout
        while not any(getattr(callback, "signalled", False) for callback in trainer.callbacks):
            if time.monotonic() > deadline:
                raise TimeoutError(f"no SIGUSR1 within {self.timeout} s of step {self.step}")
            time.sleep(0.05)


class CtrlCAtStep(Callback):
    """Raise KeyboardInterrupt, what Python's handler of Ctrl-C's SIGINT raises, as the batch of global
    step ``step`` starts, in a fit that did not resume from a checkpoint. Raised here rather than by
    sending SIGINT: a signal's handler runs at whatever bytecode comes next, which may be a finalizer
    whose exceptions Python ignores, and the interrupt would then be lost."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            raise KeyboardInterrupt
