"""The run directory: the record of one training run, and of the evaluations of its checkpoints.

Its layout, which nothing else in lc-lightning knows::

    <run>/config.yaml            the run's complete lc-train config, written once when the run is created
    <run>/status.json            where the run stands (RunStatus) and the final value of every scalar it logged
    <run>/hparams.yaml, <run>/events.out.tfevents.*      TensorBoard's
    <run>/checkpoints/           last.ckpt (end of every epoch), requeue.ckpt (SLURM requeue), any others
    <run>/validate_<n>/, <run>/test_<n>/    one evaluation of a checkpoint each: its own config.yaml,
                                 status.json and TensorBoard events

lc-train creates and keeps run directories, lc-sweep creates one per run of a grid, lc-report reads
them. A run's directory is named after its SLURM job under srun and ``version_<n>`` otherwise. Only
the run itself writes into it (an evaluation writes into its own folder), and its files follow the
umask like any other file. This module imports neither torch nor Lightning, so lc-report stays quick.
"""

import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Literal

import yaml

from lc_lightning.errors import InvalidArgumentError

CONFIG_FILE = "config.yaml"
STATUS_FILE = "status.json"
CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
REQUEUE_CHECKPOINT = "requeue.ckpt"
EVALUATION_STAGES = ("validate", "test")

State = Literal["running", "finished", "failed", "interrupted"]


@dataclass(frozen=True)
class RunStatus:
    """Where a run (or an evaluation) stands: ``state``; ``error`` ("<type>: <message>") for a
    failed or interrupted one; the epoch and global step reached; ``world_size``, the number of
    processes it trains with; ``metrics``, the last value of every scalar it logged (``val/acc``...);
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
    def for_new_run(cls, root: Path, under_slurm: bool) -> "RunDirectory":
        """The directory of a new run logged under ``root`` (TensorBoard's ``save_dir/name``):
        ``slurm-<job id>`` under srun (``slurm-<array job>_<task>`` for an array task; a job's second
        and later srun steps add ``.<step>``), which a requeued job finds again; otherwise the next
        free ``version_<n>``."""
        if under_slurm:
            name = f"slurm-{slurm_job_id()}"
            step = os.environ.get("SLURM_STEP_ID", "0")  # a requeued job numbers its steps from 0 again
            return cls(Path(root) / (name if step == "0" else f"{name}.{step}"))
        return cls(Path(root) / f"version_{_next_number(Path(root), 'version_')}")

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

    def new_evaluation(self, stage: str) -> "RunDirectory":
        """A directory for a new evaluation (``stage``: validate or test) of this run's checkpoints:
        ``<run>/<stage>_<n>``, the next free n."""
        return RunDirectory(self.path / f"{stage}_{_next_number(self.path, f'{stage}_')}")

    def evaluations(self) -> list["RunDirectory"]:
        """This run's evaluations, in the order they were made."""
        found = [RunDirectory(folder) for folder in self.path.glob("*_*") if _is_evaluation(folder)]
        made = [evaluation for evaluation in found if evaluation.exists()]
        return sorted(made, key=lambda evaluation: evaluation.config_file.stat().st_mtime)

    # -- the record

    def exists(self) -> bool:
        """Whether the run has been created (its config.yaml is there)."""
        return self.config_file.is_file()

    def create(self, config: str) -> Path | None:
        """Create the run with its complete config (YAML text), or give a run that has not trained
        yet a new one (lc-sweep, when a grid changed before the run started); return the topmost
        folder this created (None where the directory was there). A run that has trained keeps its
        config: InvalidArgumentError."""
        if self.has_trained():
            raise InvalidArgumentError(f"{self.path} holds a run that has trained; its {CONFIG_FILE} stays as it is")
        missing = [folder for folder in (self.path, *self.path.parents) if not folder.exists()]
        write_atomically(self.config_file, lambda file: file.write(config.encode()))
        return missing[-1] if missing else None

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
        as a failed run whose error says so."""
        path = self.path / STATUS_FILE
        if not path.is_file():
            return None
        try:
            return RunStatus(**json.loads(path.read_text()))
        except (ValueError, TypeError) as error:
            return RunStatus("failed", error=f"{path} is unreadable ({error})")

    def write_status(self, status: RunStatus) -> None:
        """Replace status.json atomically with ``status`` (``updated`` set to now)."""
        record = {**asdict(status), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        write_atomically(self.path / STATUS_FILE, lambda file: file.write(json.dumps(record, indent=2).encode()))

    def discard(self, created: Path) -> None:
        """Remove this run, which never trained, and the folders up to ``created`` (what :meth:`create`
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

    def has_trained(self) -> bool:
        """Whether the run finished or holds a checkpoint."""
        status = self.status()
        return (status is not None and status.state == "finished") or bool(self.checkpoints())

    def checkpoint_to_resume(self, requested: str | None, restarted_by_slurm: bool) -> str | None:
        """What a fit of this run starts from, so that no run is overwritten and a requeued one
        continues where it stopped.

        ``requested`` is ``--ckpt_path``: "last" resumes from :meth:`newest_checkpoint` (nothing for
        a run without checkpoints); a path is used as it is. Without one, a run that has no
        checkpoint starts anew, a job SLURM restarted (requeued or preempted) resumes from its
        newest checkpoint, and any other fit into a directory with checkpoints raises
        InvalidArgumentError saying how to resume it or start anew.
        """
        newest = self.newest_checkpoint()
        if requested == "last":
            return None if newest is None else str(newest)
        if requested is not None or not self.checkpoints():
            return requested
        if restarted_by_slurm and newest is not None:
            return str(newest)
        raise InvalidArgumentError(
            f"{self.path} already holds the checkpoints of a run. Resume it with --ckpt_path last, or start a new "
            f"run in a new directory with --trainer.logger.init_args.version=null --trainer.default_root_dir=null"
        )


def slurm_job_id() -> str:
    """This SLURM job's id as squeue and scontrol name it: ``<array job>_<task>`` for an array task."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def describe_error(error: BaseException) -> str:
    """An error as status.json records it: "<type>: <message>", the type alone without a message."""
    message = str(error)
    return f"{type(error).__name__}: {message}" if message else type(error).__name__


def write_atomically(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Replace ``path`` by the bytes ``write(file)`` writes, atomically and durably.

    They go to a hidden temporary file beside ``path``, which is synced to disk and moved over it
    in one step (the directory entry synced too): whatever kills the process meanwhile, ``path``
    holds the old complete file or the new one. A new file gets the permissions the umask gives
    (as with ``open``), so collaborators on a shared cluster can read runs. Temporary files left by
    a process killed while writing ``path`` are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.partial"):
        stale.unlink(missing_ok=True)
    partial = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.partial"
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


def _next_number(folder: Path, prefix: str) -> int:
    """One more than the largest n of the ``<prefix><n>`` folders in ``folder`` (0 when there is none)."""
    numbers = [int(d.name[len(prefix) :]) for d in folder.glob(f"{prefix}*") if d.name[len(prefix) :].isdigit()]
    return max(numbers, default=-1) + 1


def _is_evaluation(folder: Path) -> bool:
    return re.fullmatch(rf"({'|'.join(EVALUATION_STAGES)})_\d+", folder.name) is not None
