"""Where a training run stands, as its directory shows it: its status file and its newest checkpoint.

``lc-train fit`` keeps ``status.json`` in the run directory up to date (RecordRunStatus): running,
finished, failed or interrupted. lc-sweep reads it to skip finished runs and lc-report to tell
finished runs from failed ones. A run that was killed outright (SIGKILL, a node lost) cannot
write it and stays "running".
"""

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

STATUS_FILE = "status.json"
State = Literal["running", "finished", "failed", "interrupted"]


@dataclass(frozen=True)
class RunStatus:
    """Where a run stands: ``state``; ``error`` (the exception, "<type>: <message>") for a failed
    or interrupted run; the epoch and global step reached; when it was written (UTC, ISO 8601)."""

    state: State
    error: str | None = None
    epoch: int | None = None
    global_step: int | None = None
    updated: str = ""


def write_status(run_dir: Path, status: RunStatus) -> None:
    """Replace ``run_dir/status.json`` atomically with ``status`` (``updated`` set to now)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    record = {**asdict(status), "updated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    descriptor, partial = tempfile.mkstemp(dir=run_dir, prefix=f".{STATUS_FILE}.", suffix=".partial")
    with os.fdopen(descriptor, "w") as file:
        json.dump(record, file, indent=2)
    os.replace(partial, run_dir / STATUS_FILE)


def read_status(run_dir: Path) -> RunStatus | None:
    """The status of the run in ``run_dir``, or None where the run never started (no status file).
    An unreadable file reads as a failed run whose error says so."""
    path = Path(run_dir) / STATUS_FILE
    if not path.is_file():
        return None
    try:
        return RunStatus(**json.loads(path.read_text()))
    except (ValueError, TypeError) as error:
        return RunStatus("failed", error=f"{path} is unreadable ({error})")


def newest_checkpoint(run_dir: Path, checkpoint_dir: Path | None = None) -> str | None:
    """The most recently written of the run's ``last*.ckpt`` (in ``checkpoint_dir``, by default
    ``run_dir/checkpoints``) and of its requeue checkpoints ``run_dir/hpc_ckpt_<n>.ckpt``, or None.

    Lightning's own "last" ignores requeue checkpoints, which are newer than last.ckpt when a
    requeued job is resumed by a new one (lc-sweep's re-runs do this).
    """
    checkpoint_dir = checkpoint_dir or run_dir / "checkpoints"
    candidates = [*checkpoint_dir.glob("last*.ckpt"), *run_dir.glob("hpc_ckpt_*.ckpt")]
    return str(max(candidates, key=lambda path: path.stat().st_mtime)) if candidates else None
