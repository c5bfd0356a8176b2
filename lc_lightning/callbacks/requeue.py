"""RequeueOnSignal: a SLURM job about to reach its time limit saves its state at a step boundary,
requeues itself and resumes there, at the next batch."""

import signal
import subprocess
import threading
from pathlib import Path

from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info, rank_zero_warn
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lc_lightning.run_directory import slurm_job_id


class Requeued(SIGTERMException):
    """Raised to stop a run after it saved its state and asked SLURM to requeue its job."""


class RequeueOnSignal(Callback):
    """On SIGUSR1 (SLURM's ``--signal=SIGUSR1@<seconds>`` before the time limit), save the run's
    whole state to ``checkpoint`` at the end of the current optimizer step, run
    ``scontrol requeue <job>`` and stop the run (it is "interrupted"). The requeued job resumes
    from ``checkpoint`` with the next batch: no batch is seen twice or skipped, since the
    DataModule saves where its training loader stands.

    It replaces Lightning's own SIGUSR1 handler, which saves from inside the signal handler,
    wherever the signal lands (in the middle of a step, say). Under DDP every process saves at the
    same step: the first one any process reached after the signal.
    """

    def __init__(self, checkpoint: str) -> None:
        self.checkpoint = Path(checkpoint)
        self._signalled = False
        self._requeued = False
        self._previous_handler = None

    @property
    def signalled(self) -> bool:
        """Whether SIGUSR1 arrived: the run is saved at the end of the current step, then requeued."""
        return self._signalled

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit" and threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGUSR1, self._on_signal)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        self._restore_handler()

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        self._restore_handler()  # Lightning does not call teardown after an exception

    def _restore_handler(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGUSR1, self._previous_handler)
            self._previous_handler = None

    def _on_signal(self, signum, frame) -> None:
        rank_zero_info("Received SIGUSR1: saving at the end of this step, then requeueing the job")
        self._signalled = True

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch, batch_idx: int) -> None:
        if self._requeued:
            raise Requeued()

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        stepped = (batch_idx + 1) % trainer.accumulate_grad_batches == 0 or trainer.is_last_batch
        signalled = self._signalled
        if trainer.world_size > 1:  # every process takes part, so that they agree on the step
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if not (stepped and signalled) or self._requeued:
            return
        trainer.save_checkpoint(self.checkpoint)
        if trainer.is_global_zero:
            _requeue_job()
        self._requeued = True


def _requeue_job() -> None:
    """Ask SLURM to requeue this job (this array task). A failure is logged; the run stops all the
    same, and resumes when the job is submitted again."""
    job = slurm_job_id()
    try:
        result = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        rank_zero_warn(f"Requeuing SLURM job {job} failed: {error}")
        return
    if result.returncode == 0:
        rank_zero_info(f"Requeued SLURM job {job}")
    else:
        rank_zero_warn(f"Requeuing SLURM job {job} failed: {result.stderr.strip()}")
