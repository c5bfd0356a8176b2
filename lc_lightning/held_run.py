"""HeldRun: a run directory (or an evaluation's) that this lc-train process holds while its command runs."""

import contextlib
import os
from pathlib import Path

from lc_lightning.callbacks.summary import resume_command
from lc_lightning.errors import InvalidArgumentError, RunHeldError, UserInputError
from lc_lightning.faults import NOT_WRITABLE, CrashLog, describe_fault, is_disk_full
from lc_lightning.run_directory import NEW_RUN_ADVICE, RunDirectory, describe_error, shown


class HeldRun:
    """``run``, held by this process for ``command`` ("lc-train fit"...) from construction to ``let_go``:
    its lock (lc_lightning.run_lock) and a log of this process's stacks should it crash. ``created`` is
    the topmost folder this command made for it (None where it made none).

    Construction raises InvalidArgumentError where a live process holds the run, and says in one line
    where it takes the run over from a process that died.
    """

    def __init__(self, run: RunDirectory, created: Path | None, command: str) -> None:
        self.run = run
        self.created = created
        before = run.status()
        try:
            self._lock = run.hold(command)
        except RunHeldError as error:
            raise InvalidArgumentError(
                f"{shown(run.path)} is in use by {error.holder}; only that process writes to it. Wait until it ends "
                f"(or stop it), or {NEW_RUN_ADVICE}"
            ) from None
        if before is not None and before.state == "died":
            where = f"at epoch {before.epoch}, step {before.global_step}"
            print(f"lc-train: {shown(run.path)} died {where} ({before.error}); taking it over")
        elif self._lock.previous is not None:
            print(f"lc-train: {shown(run.path)} was held by {self._lock.previous}, which is gone; taking it over")
        try:
            self._crash_log = CrashLog(run.crash_log(os.getpid()))
        except BaseException:
            run.let_go(self._lock)
            raise

    def start_failed(self, error: BaseException, trained: bool, recorded: bool) -> None:
        """After ``error`` stopped the command: a directory it made for a run that never ``trained`` is
        removed; where the command's RecordRun has not ``recorded`` the failure, the run's status says
        why (RunDirectory.record_failure: a finished run stays as it is), but for a mistake in the input
        to a run that has a status already (an interrupted run keeps saying so)."""
        if self.created is not None and not trained:
            self.run.discard(self.created)
        elif not recorded and not (isinstance(error, UserInputError) and self.run.status() is not None):
            with contextlib.suppress(OSError):  # a full disk, a read-only directory: the error says it
                self.run.record_failure(describe_error(error))

    def let_go(self) -> None:
        """Stop logging crashes into the run and release it."""
        self._crash_log.close()
        with contextlib.suppress(OSError):  # a read-only directory: released all the same
            self.run.let_go(self._lock)


def fault_line(fault: OSError, run: RunDirectory | None, fit: bool, resumed: bool) -> str:
    """What a full disk or an unwritable directory (``fault``, lc_lightning.faults) did to a command (a
    ``fit``, ``resumed`` or not) and its ``run`` (None for a command without one), what was kept and what
    to run once it is fixed."""
    what = describe_fault(fault, shown(fault.filename) if fault.filename else None)
    full, unwritable = is_disk_full(fault), fault.errno in NOT_WRITABLE
    if run is None or not run.exists():
        fix = "free some space" if full else "make it writable" if unwritable else "log to another filesystem"
        if fit and not full:
            fix = f"log to a {'writable directory' if unwritable else 'filesystem with file locks'} "
            fix += f"(--trainer.logger.init_args.save_dir=DIR){' or make it writable' if unwritable else ''}"
        return f"{what}. Nothing was kept: {fix}, then run the same command again"
    once = "there is space" if full else "it is writable" if unwritable else "it has file locks"
    if not fit or resumed:
        return f"{what}. Once {once}, run the same command again"
    latest = run.latest_checkpoint()
    kept = "the run saved no checkpoint" if latest is None else f"the run's newest checkpoint is {shown(latest)}"
    return f"{what}; {kept}. Once {once}, resume it with: {resume_command(run)}"
