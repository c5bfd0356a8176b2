"""The run directory: the record of one training run, and of the evaluations of its checkpoints.

Its layout, which nothing else in lc-lightning knows::

    <run>/config.yaml            the run's complete lc-train config, written once when the run is created
    <run>/status.json            where the run stands (RunStatus) and the final value of every scalar it logged
    <run>/run.lock               held by the one live process that writes the run (lc_lightning.run_lock)
    <run>/crash-<pid>.log        the Python stacks of process <pid> if it crashed (faulthandler)
    <run>/hparams.yaml, <run>/events.out.tfevents.*      TensorBoard's
    <run>/checkpoints/           last.ckpt (end of every epoch), requeue.ckpt (SLURM requeue), any others
    <run>/validate_<n>/, <run>/test_<n>/    one evaluation of a checkpoint each: its own config.yaml,
                                 status.json and TensorBoard events
    <run>/attempt_<n>/           the files of an earlier start that stopped before its first checkpoint

lc-train creates and keeps run directories, lc-sweep creates one per run of a grid, lc-report reads
them. A run's directory is named after its SLURM job under srun and ``version_<n>`` otherwise, made in
one atomic step. Only the process holding its lock writes into it (an evaluation writes into its own
folder, which it holds), and its files follow the umask like any other file. This module imports
neither torch nor Lightning, so lc-report stays quick.
"""

import json
import math
import os
import re
import shlex
import shutil
import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Literal

import yaml

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.faults import describe_fault, is_disk_full, machine_fault
from lc_lightning.run_lock import LOCK_FILE, RunLock, holder, last_holder, process_alive

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
REQUEUE_CHECKPOINT = "requeue.ckpt"
CRASH_LOGS = "crash-*.log"
EVALUATION_STAGES = ("validate", "test")
ATTEMPT_PREFIX = "attempt_"
RESERVE_FILE = ".status.json.reserve"
RESERVE_BYTES = 64 * 1024  # room for status.json once the disk is full
HANDED_ON_DIRECTORY = "LC_LIGHTNING_RUN_DIRECTORY"  # see RunDirectory.for_fit
NEW_RUN_ADVICE = "start a new run with --trainer.logger.init_args.version=null --trainer.default_root_dir=null"

State = Literal["running", "finished", "failed", "interrupted", "died"]


@dataclass(frozen=True)
class RunStatus:
    """Where a run (or an evaluation) stands: ``state`` ("died": it says "running" but no process holds
    it); ``error`` ("<type>: <message>", or the fault in words) for a failed, interrupted or died one;
    the epoch and global step reached; ``world_size``, the number of processes it trains with;
    ``metrics``, the last value of every scalar it logged (``val/acc``...);
    the best ``val/acc`` of a fit's validations and the epoch it was reached in; when it was written
    (UTC, ISO 8601)."""

    state: State
    error: str | None = None
    epoch: int | None = None
    global_step: int | None = None
    world_size: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    best_val_acc: float | None = None
    best_epoch: int | None = None
    updated: str = ""


@dataclass(frozen=True)
class RunDirectory:
    """The directory ``path`` of one run (or of one evaluation of a run's checkpoint)."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / CHECKPOINT_DIR

    @property
    def requeue_checkpoint(self) -> Path:
        """Where a run saves its state when SLURM is about to stop it, to resume after the requeue."""
        return self.checkpoint_dir / REQUEUE_CHECKPOINT

    # -- choosing a directory

    @classmethod
    def claim_new_run(cls, root: Path, under_slurm: bool) -> tuple["RunDirectory", Path | None]:
        """Create the directory of a new run logged under ``root`` (TensorBoard's ``save_dir/name``) and
        return it with the topmost folder this created (None where none was: a requeued job's).

        Under srun it is ``of_slurm_job``, which a requeued job finds again; otherwise the next free
        ``version_<n>``, taken by one ``mkdir`` that fails where another process took it first (then the
        next n is tried), so that runs started together never share a directory."""
        if not under_slurm:
            run, created = _claim_numbered(Path(root), "version_")
            return cls(run), created
        return cls.of_slurm_job(root).make()

    @classmethod
    def for_fit(
        cls, root: Path, version: str | int | None, rank: int, under_slurm: bool
    ) -> tuple["RunDirectory", Path | None]:
        """The directory of a fit logged under ``root`` (TensorBoard's ``save_dir/name``) as ``version`` (None
        for a new run) by the process of global ``rank``, and the topmost folder this process created for it
        (None where it created none).

        The global-zero process makes it: a version given where it is missing, a new run by
        ``claim_new_run``, whose directory it hands to the processes Lightning's DDP launcher starts after
        it (through the environment). The other processes take the same directory: the version given,
        ``of_slurm_job`` under srun, else the one the global-zero process handed on.
        """
        if version is not None:
            run = cls.of_version(root, version)
            return run.make() if rank == 0 else (run, None)
        if rank == 0:
            run, created = cls.claim_new_run(root, under_slurm)
            os.environ[HANDED_ON_DIRECTORY] = str(run.path)
            return run, created
        if under_slurm:
            return cls.of_slurm_job(root), None
        return cls(_directory_handed_on(rank)), None

    @classmethod
    def for_evaluation(
        cls, checkpoint: Path | None, root: Path, stage: str, rank: int, under_slurm: bool
    ) -> tuple["RunDirectory", Path | None]:
        """The directory of a ``stage`` ("validate" or "test") of ``checkpoint`` by the process of global
        ``rank``, and the topmost folder this process created for it (None where it created none): a new
        ``<stage>_<n>`` in the run the checkpoint is of, or under ``root`` (TensorBoard's ``save_dir/name``)
        for a checkpoint outside any run (or none), made by the global-zero process and handed on as
        ``for_fit`` does. The other tasks of an srun write nothing: they get a name of their own."""
        run = cls.containing(checkpoint) if checkpoint is not None else None
        evaluated = run or cls(Path(root))
        if rank == 0:
            evaluation, created = evaluated.claim_evaluation(stage)
            os.environ[HANDED_ON_DIRECTORY] = str(evaluation.path)
            return evaluation, created
        if under_slurm:
            return cls(evaluated.path / f"{stage}_rank{rank}"), None
        return cls(_directory_handed_on(rank)), None

    def make(self) -> tuple["RunDirectory", Path | None]:
        """This directory, made where it is missing, and the topmost folder this made (None where another
        process made it, or it was there)."""
        created = _topmost_missing(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.path.mkdir()
        except FileExistsError:
            return self, None
        return self, created

    @classmethod
    def of_slurm_job(cls, root: Path) -> "RunDirectory":
        """The directory of this SLURM job's run under ``root``: ``slurm-<job id>``
        (``slurm-<array job>_<task>`` for an array task; a job's second and later srun steps add
        ``.<step>``)."""
        name = f"slurm-{slurm_job_id()}"
        step = os.environ.get("SLURM_STEP_ID", "0")  # a requeued job numbers its steps from 0 again
        return cls(Path(root) / (name if step == "0" else f"{name}.{step}"))

    @classmethod
    def of_version(cls, root: Path, version: str | int) -> "RunDirectory":
        """The directory of the run logged under ``root`` as ``version``: a name, or a number n for
        ``version_<n>`` (as TensorBoard numbers them)."""
        return cls(Path(root) / (version if isinstance(version, str) else f"version_{version}"))

    @classmethod
    def containing(cls, checkpoint: Path) -> "RunDirectory | None":
        """The run whose checkpoint ``checkpoint`` is (it lies in the run's checkpoints/ folder or in
        the run directory itself), or None for a checkpoint outside any run directory."""
        checkpoint = Path(checkpoint).resolve()
        for folder in (checkpoint.parent, checkpoint.parent.parent):
            if (folder / CONFIG_FILE).is_file() and not _is_evaluation(folder):
                return cls(folder)
        return None

    @classmethod
    def of_config(cls, config: Path) -> "RunDirectory | None":
        """The run whose config.yaml ``config`` is (lc-train recorded the run's directory name as its
        logger's version), or None for any other file."""
        config = Path(config)
        if config.name != CONFIG_FILE or not config.is_file():
            return None
        run = cls(config.parent)
        logger = (run.config().get("trainer") or {}).get("logger")
        version = (logger.get("init_args") or {}).get("version") if isinstance(logger, dict) else None
        names = (run.path.name, run.path.name.removeprefix("version_"))  # a version given as n names version_<n>
        return run if version is not None and str(version) in names else None

    def placement_options(self) -> list[str]:
        """The lc-train options that place a fit of this run in this directory, wherever it lies now: its
        TensorBoard logger's ``save_dir`` and ``name`` (as its config names the run's parent) and
        ``default_root_dir``."""
        logger = self.config()["trainer"]["logger"]["init_args"]
        root = self.path.parent.parent if logger.get("name") else self.path.parent
        options = [f"--trainer.logger.init_args.save_dir={root}", f"--trainer.default_root_dir={self.path}"]
        if logger.get("name"):
            options.append(f"--trainer.logger.init_args.name={self.path.parent.name}")
        return options

    def claim_evaluation(self, stage: str) -> tuple["RunDirectory", Path | None]:
        """Create the directory of a new evaluation (``stage``: validate or test) of this run's
        checkpoints, ``<run>/<stage>_<n>`` with the next free n (taken as ``claim_new_run`` takes a
        version), and return it with the topmost folder this created."""
        evaluation, created = _claim_numbered(self.path, f"{stage}_")
        return RunDirectory(evaluation), created

    def evaluations(self) -> list["RunDirectory"]:
        """This run's evaluations, in the order they were made."""
        found = [RunDirectory(folder) for folder in self.path.glob("*_*") if _is_evaluation(folder)]
        made = [evaluation for evaluation in found if evaluation.exists()]
        return sorted(made, key=lambda evaluation: evaluation.config_file.stat().st_mtime)

    # -- who writes it

    def hold(self, command: str) -> RunLock:
        """Take this directory for this process (lc_lightning.run_lock; RunHeldError where a live process
        holds it) and keep room for its status.json should the disk fill up. Let go with ``let_go``."""
        lock = RunLock.acquire(self.path, command)
        try:
            reserve = self.path / RESERVE_FILE
            if not reserve.is_file() or reserve.stat().st_size < RESERVE_BYTES:
                write_atomically(reserve, lambda file: file.write(os.urandom(RESERVE_BYTES)))  # no hole: real room
        except BaseException:
            lock.release()
            raise
        return lock

    def let_go(self, lock: RunLock) -> None:
        """Release ``lock`` (what ``hold`` returned) and the room kept for status.json."""
        try:
            (self.path / RESERVE_FILE).unlink(missing_ok=True)
        finally:
            lock.release()

    # -- the record

    def exists(self) -> bool:
        """Whether the run has been created (its config.yaml is there)."""
        return self.config_file.is_file()

    def create(self, config: str) -> None:
        """Write the run's complete config (YAML text), or give a run that has not trained yet a new one
        (lc-sweep, when a grid changed before the run started). A run that has trained keeps its
        config: InvalidArgumentError."""
        if self.has_trained():
            raise InvalidArgumentError(f"{self.path} holds a run that has trained; its {CONFIG_FILE} stays as it is")
        write_atomically(self.config_file, lambda file: file.write(config.encode()))

    def config_text(self) -> str:
        """The run's config.yaml as written; "" where there is none."""
        return self.config_file.read_text() if self.config_file.is_file() else ""

    def config(self) -> dict:
        """The run's config.yaml as a nested dict; {} where there is none or it is not a YAML mapping."""
        try:
            config = yaml.safe_load(self.config_text())
        except yaml.YAMLError:
            return {}
        return config if isinstance(config, dict) else {}

    def status(self) -> RunStatus | None:
        """The run's status, or None where it never started (no status.json). An unreadable file reads
        as a failed run whose error says so; a "running" status that no live process holds reads as
        "died", with the process that held it last and the crash log, if there is one."""
        path = self.path / STATUS_FILE
        if not path.is_file():
            return None
        try:
            record = json.loads(path.read_text())
            numbers = {"metrics": {name: _number(value) for name, value in record.get("metrics", {}).items()}}
            status = RunStatus(**{**record, **numbers, "best_val_acc": _number(record.get("best_val_acc"))})
        except (ValueError, TypeError) as error:
            return RunStatus("failed", error=f"{path} is unreadable ({error})")
        if status.state != "running" or holder(self.path) is not None:
            return status
        error = f"its process ({last_holder(self.path) or 'which no longer holds it'}) stopped without recording why"
        crashes = [log for log in self.path.glob(CRASH_LOGS) if log.stat().st_size]
        crash = max(crashes, key=lambda log: log.stat().st_mtime, default=None)
        if crash is not None and crash.stat().st_mtime >= path.stat().st_mtime:
            error = f"its process crashed: {crash} has its stack"
        return replace(status, state="died", error=error)

    def crash_log(self, pid: int) -> Path:
        """Where process ``pid`` holding the run writes its stacks should it crash (lc_lightning.faults.CrashLog)."""
        return self.path / CRASH_LOGS.replace("*", str(pid))

    def write_status(self, status: RunStatus) -> None:
        """Replace status.json atomically with ``status`` (``updated`` set to now), in strict JSON (numbers
        that are not finite as the strings "nan", "inf", "-inf"). On a full disk, the room ``hold`` kept
        is used."""
        record = {**asdict(status), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        record["metrics"] = {name: _json_number(value) for name, value in status.metrics.items()}
        record["best_val_acc"] = _json_number(status.best_val_acc)
        text = json.dumps(record, indent=2, allow_nan=False).encode()
        try:
            write_atomically(self.path / STATUS_FILE, lambda file: file.write(text), sole_writer=True)
        except OSError as error:
            reserve = self.path / RESERVE_FILE
            if not (is_disk_full(error) and reserve.is_file()):
                raise
            reserve.unlink()
            write_atomically(self.path / STATUS_FILE, lambda file: file.write(text), sole_writer=True)

    def record_failure(self, error: str) -> None:
        """Record that a start of this run failed before it trained, ``error`` saying why, keeping where
        the run stood. A finished run's record stays as it is."""
        status = self.status()
        if status is None or status.state != "finished":
            self.write_status(replace(status or RunStatus("failed"), state="failed", error=error))

    def discard(self, created: Path) -> None:
        """Remove this run, which never trained, and the folders up to ``created`` (what ``claim_new_run``
        returned) that are empty then: what a start that failed had made."""
        shutil.rmtree(self.path, ignore_errors=True)
        folder = self.path
        while folder != created and folder.parent != folder:
            folder = folder.parent
            if not folder.is_dir() or any(folder.iterdir()):
                break
            folder.rmdir()

    # -- resuming

    def checkpoints(self) -> list[Path]:
        """Every checkpoint file of the run."""
        return sorted(self.checkpoint_dir.glob("*.ckpt")) if self.checkpoint_dir.is_dir() else []

    def newest_checkpoint(self) -> Path | None:
        """The most recently written of ``last.ckpt`` and ``requeue.ckpt``, or None. A requeued run
        that was then stopped for good has a requeue checkpoint newer than its last.ckpt."""
        candidates = [self.checkpoint_dir / LAST_CHECKPOINT, self.requeue_checkpoint]
        written = [path for path in candidates if path.is_file()]
        return max(written, key=lambda path: path.stat().st_mtime) if written else None

    def resumable_checkpoint(self) -> Path | None:
        """What ``--ckpt_path last`` resumes from: ``newest_checkpoint``, where no other checkpoint of
        the run was written after it (one may be, where the disk filled up between the two)."""
        newest = self.newest_checkpoint()
        if newest is None or any(path.stat().st_mtime > newest.stat().st_mtime for path in self.checkpoints()):
            return None
        return newest

    def latest_checkpoint(self) -> Path | None:
        """The run's most recently written checkpoint, whatever its name, or None."""
        return max(self.checkpoints(), key=lambda path: path.stat().st_mtime, default=None)

    def resume_option(self) -> str | None:
        """The ``--ckpt_path`` value that resumes the run from ``latest_checkpoint``: "last" where that is
        ``resumable_checkpoint``, else its path; None for a run without checkpoints."""
        if self.resumable_checkpoint() is not None:
            return "last"
        latest = self.latest_checkpoint()
        return None if latest is None else str(latest)

    def has_trained(self) -> bool:
        """Whether the run finished or holds a checkpoint."""
        status = self.status()
        return (status is not None and status.state == "finished") or bool(self.checkpoints())

    def resume_point(self, requested: str | None, world_size: int, restarted_by_slurm: bool) -> str | None:
        """The checkpoint a fit of this run with ``world_size`` processes starts from (None: the beginning),
        so that no run is overwritten, none silently starts over or sees other batches, and a requeued one
        continues where it stopped.

        A run that trained with another number of processes raises InvalidArgumentError. ``requested`` is
        ``--ckpt_path``: "last" resumes from ``resumable_checkpoint`` (a run without checkpoints starts from
        the beginning: see ``set_aside_earlier_start``); where the run holds other checkpoints but none that
        "last" resumes from, InvalidArgumentError names the newest. A path is used as it is. Without one, a
        run that has no checkpoint starts anew, a job SLURM restarted (requeued or preempted) resumes from
        its newest checkpoint, and any other fit into a directory with checkpoints raises
        InvalidArgumentError saying how to resume it or start anew.
        """
        status = self.status()
        if status is not None and status.world_size not in (None, world_size):
            raise InvalidArgumentError(
                f"{self.path} trained with {status.world_size} processes, this fit has {world_size}: resume it "
                "with the same --trainer.devices and --trainer.num_nodes (under SLURM: --nodes and "
                "--ntasks-per-node), so that it sees the same batches"
            )
        checkpoints = self.checkpoints()
        if requested == "last":
            resumable = self.resumable_checkpoint()
            if resumable is not None:
                return str(resumable)
            if not checkpoints and status is not None and status.state == "finished":
                raise InvalidArgumentError(
                    f"--ckpt_path last: {shown(self.path)} finished without a checkpoint to resume; {NEW_RUN_ADVICE}"
                )
            if not checkpoints:
                return None
            newest = self.latest_checkpoint()
            raise InvalidArgumentError(
                f"--ckpt_path last: {shown(self.path)} holds no {LAST_CHECKPOINT} or {REQUEUE_CHECKPOINT} as new as "
                f"its newest checkpoint, {newest.name}; resume from that one with --ckpt_path {shown(newest)}, or "
                f"{NEW_RUN_ADVICE}"
            )
        if requested is not None or not checkpoints:
            return requested
        if restarted_by_slurm and self.newest_checkpoint() is not None:
            return str(self.newest_checkpoint())
        raise InvalidArgumentError(
            f"{shown(self.path)} already holds the checkpoints of a run. Resume it with --ckpt_path last, or "
            f"{NEW_RUN_ADVICE}"
        )

    def set_aside_earlier_start(self) -> Path | None:
        """Move the record of an earlier start that trained (its status says so, or it left TensorBoard
        events: it died before its first status) but stopped, unfinished, before its first checkpoint
        (status.json, TensorBoard's files, crash logs but this process's) into ``attempt_<n>/`` with a
        copy of its config.yaml, so that the run starts again without mixing two starts' curves; return
        that folder, or None where there is no such start (nothing was moved)."""
        status = self.status()
        trained = status is not None and (status.global_step or any(self.path.glob("events.out.tfevents.*")))
        if self.checkpoints() or not trained or status.state == "finished":
            return None
        attempt = RunDirectory(_claim_numbered(self.path, ATTEMPT_PREFIX)[0])
        kept = {CONFIG_FILE, LOCK_FILE, RESERVE_FILE, CHECKPOINT_DIR, self.crash_log(os.getpid()).name}
        for entry in list(self.path.iterdir()):
            if entry.name not in kept and not entry.name.startswith(ATTEMPT_PREFIX) and not _is_evaluation(entry):
                entry.rename(attempt.path / entry.name)
        shutil.copy2(self.config_file, attempt.config_file)
        return attempt.path


def _directory_handed_on(rank: int) -> Path:
    """The directory the global-zero process fixed, for the process of ``rank`` Lightning's DDP launcher
    started after it."""
    if HANDED_ON_DIRECTORY not in os.environ:
        raise InvalidArgumentError(
            f"started as rank {rank} by a launcher other than lc-train's own (--trainer.devices) or srun, "
            "lc-train cannot tell its run's directory: name it with --trainer.logger.init_args.version"
        )
    return Path(os.environ[HANDED_ON_DIRECTORY])


def config_leaves(config: dict, prefix: str = "") -> dict[str, object]:
    """The values of a nested ``config`` by dotted key (``model.network.init_args.expansion``...), each key
    after ``prefix``."""
    leaves = {}
    for key, value in config.items():
        if isinstance(value, dict):
            leaves.update(config_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


def shown(path: Path | str) -> str:
    """``path`` as a shell word in what lc-lightning prints: relative to the working directory where it
    is inside it, else absolute, quoted where the shell needs it."""
    path = Path(path).resolve()
    relative = os.path.relpath(path)
    return shlex.quote(str(path) if relative.startswith("..") else relative)


def slurm_job_id() -> str:
    """This SLURM job's id as squeue and scontrol name it: ``<array job>_<task>`` for an array task."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def describe_error(error: BaseException) -> str:
    """An error as status.json records it: a full disk or an unwritable directory in words
    (lc_lightning.faults), else "<type>: <message>", the type alone without a message."""
    fault = machine_fault(error)
    if fault is not None:
        return describe_fault(fault)
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def write_atomically(path: Path, write: Callable[[BinaryIO], object], sole_writer: bool = False) -> None:
    """Replace ``path`` by the bytes ``write(file)`` writes, atomically and durably.

    They go to a hidden temporary file beside ``path``, which is synced to disk and moved over it
    in one step (the directory entry synced too): whatever kills the process meanwhile, ``path``
    holds the old complete file or the new one. A new file gets the permissions the umask gives
    (as with ``open``), so collaborators on a shared cluster can read runs. Temporary files left by
    a process killed while writing ``path`` are removed first: any where this process is its
    ``sole_writer`` (it holds the run), else those of processes of this host that are gone. An
    OSError names ``path``.
    """
    path = Path(path)
    host = socket.gethostname()
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        writer, _, _ = stale.name[len(f".{path.name}.") : -len(".partial")].rpartition(".")  # <host>.<pid>.<random>
        writer_host, _, pid = writer.rpartition(".")
        if sole_writer or (writer_host == host and pid.isdigit() and not process_alive(int(pid))):
            stale.unlink(missing_ok=True)
    partial = path.parent / f".{path.name}.{host}.{os.getpid()}.{os.urandom(4).hex()}.partial"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(descriptor, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    except OSError as error:
        if error.filename == str(path):
            raise
        raise OSError(error.errno, error.strerror, str(path)) from error
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _claim_numbered(folder: Path, prefix: str) -> tuple[Path, Path]:
    """Create ``<folder>/<prefix><n>``, n one more than the largest taken, in one ``mkdir`` that fails
    where another process made it first (then the next n is tried); return it with the topmost folder
    this created."""
    created = _topmost_missing(folder)
    folder.mkdir(parents=True, exist_ok=True)
    taken = [int(d.name[len(prefix) :]) for d in folder.glob(f"{prefix}*") if d.name[len(prefix) :].isdigit()]
    number = max(taken, default=-1) + 1
    while True:
        try:
            (folder / f"{prefix}{number}").mkdir()
        except FileExistsError:
            number += 1
            continue
        path = folder / f"{prefix}{number}"
        return path, created or path


def _topmost_missing(path: Path) -> Path | None:
    """The topmost of ``path`` and its parents that does not exist (None where ``path`` exists)."""
    missing = [folder for folder in (path, *path.parents) if not folder.exists()]
    return missing[-1] if missing else None


def _json_number(value: float | None) -> float | str | None:
    """``value`` as strict JSON has it: the strings "nan", "inf" and "-inf" for numbers that are not finite."""
    return str(value) if isinstance(value, float) and not math.isfinite(value) else value


def _number(value: float | str | None) -> float | None:
    """A number read from status.json: "nan", "inf" and "-inf" back as floats."""
    return float(value) if isinstance(value, str) else value


def _is_evaluation(folder: Path) -> bool:
    return re.fullmatch(rf"({'|'.join(EVALUATION_STAGES)})_\d+", folder.name) is not None
