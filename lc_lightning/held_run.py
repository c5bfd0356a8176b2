"""HeldRun: a run directory (or an evaluation's) that this lc-train process holds while its command runs."""

import contextlib
import os
from collections.abc import Callable
from pathlib import Path

from lc_lightning.callbacks.summary import resume_command
from lc_lightning.errors import InvalidArgumentError, MachineFaultError, RunHeldError, UserInputError, user_input_cause
from lc_lightning.faults import NOT_WRITABLE, CrashLog, describe_fault, is_disk_full, machine_fault
from lc_lightning.run_directory import NEW_RUN_ADVICE, RunDirectory, describe_error, shown


class HeldRun:
    """``run``, held by this process for ``command`` ("lc-train fit"...) from construction to ``let_go``:
    its lock (lc_lightning.run_lock) and a log of this process's stacks should it crash. ``created`` is
    the topmost folder this command made for it (None where it made none).

    Construction raises InvalidArgumentError where a live process holds the run, and says in one line
    where it takes the run over from a process that died; where it fails otherwise, the folder ``created``
    is removed, so that a start that failed leaves nothing it made.
    """

    def __init__(self, run: RunDirectory, created: Path | None, command: str) -> None:
        self.run = run
        self.created = created
        try:
            before = run.status()
            self._lock = run.hold(command)
        except RunHeldError as error:  # its directory stays as it is
            raise InvalidArgumentError(
                f"{shown(run.path)} is in use by {error.holder}; only that process writes to it. Wait until it ends "
                f"(or stop it), or {NEW_RUN_ADVICE}"
            ) from None
        except BaseException:
            if created is not None:
                run.discard(created)
            raise
        if before is not None and before.state == "died":
            where = f"at epoch {before.epoch}, step {before.global_step}"
            print(f"lc-train: {shown(run.path)} died {where} ({before.error}); taking it over")
        elif self._lock.previous is not None:
            print(f"lc-train: {shown(run.path)} was held by {self._lock.previous}, which is gone; taking it over")
        try:
            self._crash_log = CrashLog(run.crash_log(os.getpid()))
        except BaseException:
            run.let_go(self._lock)
            if created is not None:
                run.discard(created)
            raise

    def begin_fit(self, starts_over: bool, config_text: Callable[[], str]) -> None:
        """Before a fit's first step: where ``--ckpt_path last`` found no checkpoint (it ``starts_over``), the
        files of an earlier start are set aside (RunDirectory.set_aside_earlier_start), saying so; a new run's
        config.yaml is written (``config_text`` gives it)."""
        attempt = self.run.set_aside_earlier_start() if starts_over else None
        if attempt is not None:
            print(
                f"lc-train: {shown(self.run.path)} has no checkpoint to resume from: training it from the start; "
                f"the earlier start's files are kept in {shown(attempt)}"
            )
        if not self.run.exists():
            self.run.create(config_text())

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


def end_failed_command(
    error: BaseException,
    held: HeldRun | None,
    run: RunDirectory | None,
    *,
    fit: bool,
    trained: bool,
    recorded: bool,
    ckpt_given: bool,
) -> None:
    """What lc-train does after ``error`` stopped a command of ``run``: the ``held`` run (None where this
    process held none) keeps the record of it (HeldRun.start_failed); a full disk or an unwritable directory
    raises MachineFaultError with its ``fault_line``. Any other error is left to the caller to raise.

    The command was a ``fit`` (or an evaluation), ``trained`` (took an optimizer step) or not, its
    RecordRun ``recorded`` the failure or not, and it named a checkpoint to start from (``ckpt_given``) or
    not."""
    if held is not None:
        held.start_failed(user_input_cause(error) or error, trained, recorded)
    fault = machine_fault(error)
    if fault is not None:
        resumed = ckpt_given and not (held is not None and held.created is not None)
        raise MachineFaultError(fault_line(fault, run, fit, resumed)) from None


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
