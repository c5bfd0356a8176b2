"""Callbacks that interrupt a run the way a stopped or requeued job is (importable by class path:
``helpers.interruptions.SignalAtStep``)."""

import ctypes
import json
import os
import signal
import time
from pathlib import Path

from lightning import Callback

from helpers.runs import file_hashes


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


class FillDiskAtEpoch(Callback):
    """As training epoch ``epoch`` starts in a fit that did not resume from a checkpoint, fill the filesystem of
    the run directory with the file ``filler``, leaving ``leave`` bytes free, as another process writing to a
    shared disk would; first write the
    sha256 of every file of the run into ``<filler>.hashes`` (JSON), what the test compares after the fault."""

    def __init__(self, epoch: int, filler: str, leave: int) -> None:
        self.epoch = epoch
        self.filler = Path(filler)
        self.leave = leave

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        if trainer.current_epoch != self.epoch or trainer.ckpt_path is not None:
            return
        hashes = file_hashes(Path(trainer.default_root_dir))
        Path(f"{self.filler}.hashes").write_text(json.dumps(hashes))
        disk = os.statvfs(self.filler.parent)
        self.filler.write_bytes(bytes(max(disk.f_bavail * disk.f_frsize - self.leave, 0)))


class SegfaultAtStep(Callback):
    """Crash the process with a segmentation fault (as a native library's bug does) as the batch of
    global step ``step`` starts, in a fit that did not resume from a checkpoint."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step and trainer.ckpt_path is None:
            ctypes.string_at(0)


class WaitForSigtermAtStep(Callback):
    """As the batch of global step ``step`` starts, the first time in any run (while the file ``marker`` does
    not exist yet), write ``marker`` and wait until SIGTERM reaches the process (or ``timeout`` seconds
    pass), so that a test can stop a sweep while this run trains."""

    def __init__(self, step: int, marker: str, timeout: float = 120) -> None:
        self.step = step
        self.marker = Path(marker)
        self.timeout = timeout

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step != self.step or self.marker.exists():
            return
        self.marker.write_text(str(os.getpid()))
        deadline = time.monotonic() + self.timeout
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)
