"""A sweep's runs as one SLURM job array: ``sbatch --array`` submits them, ``squeue`` says which
are still queued or running. Array task i is the run on line i + 1 of the sweep's runs.txt."""

import os
import subprocess
import sys
from pathlib import Path

from lc_lightning.errors import UserInputError

# sbatch options lc-sweep sets itself: the runs of the array, and the comment that marks its jobs.
TRACKING_OPTIONS = {"--array", "-a", "--comment"}
# lc-sweep's batch script, installed with the package (package data).
SWEEP_SCRIPT = Path(__file__).resolve().parents[1] / "slurm" / "sweep.sbatch"


def array_spec(indices: list[int]) -> str:
    """sbatch's ``--array`` value for these task indices, runs of consecutive ones as ranges
    ([0, 1, 2, 5, 7, 8] -> "0-2,5,7-8")."""
    ranges, indices = [], sorted(indices)
    start = previous = indices[0]
    for index in [*indices[1:], None]:
        if index is not None and index == previous + 1:
            previous = index
            continue
        ranges.append(f"{start}" if start == previous else f"{start}-{previous}")
        start = previous = index
    return ",".join(ranges)


def queued_tasks(sweep_dir: Path) -> dict[int, str]:
    """The array tasks of this sweep that SLURM still holds (pending, running, requeued), as
    {task index: job id "<array job>_<task>"}. lc-sweep marks its jobs with ``--comment=<sweep dir>``."""
    listing = _slurm("squeue", "--me", "--noheader", "--array", "--format=%i|%K|%k")
    tasks = {}
    for line in listing.splitlines():
        job, task, comment = line.split("|", 2)
        if comment == str(sweep_dir) and task.isdigit():
            tasks[int(task)] = job
    return tasks


def submit_array(sweep_dir: Path, indices: list[int], script: Path, sbatch_options: list[str]) -> str:
    """Submit the runs ``indices`` of the sweep in ``sweep_dir`` as one job array of ``script``
    and return its job id. Output goes to ``<sweep dir>/slurm/<job>_<task>.out``; the
    ``sbatch_options`` come last, so they override lc-sweep's and the script's."""
    for option in sbatch_options:
        if option.split("=")[0] in TRACKING_OPTIONS:
            raise UserInputError(
                f"sbatch option {option}: lc-sweep sets it to find its runs in the queue; leave it out"
            )
    if not script.is_file():
        raise UserInputError(f"no batch script at {script}: pass lc-sweep --sbatch_script <an existing file>")
    (sweep_dir / "slurm").mkdir(exist_ok=True)
    # the batch script calls lc-train: the one installed beside this Python, also where no venv is activated
    environment = {
        **os.environ,
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
    return _slurm(
        "sbatch", "--parsable", f"--array={array_spec(indices)}", f"--job-name={sweep_dir.name}",
        f"--comment={sweep_dir}", f"--output={sweep_dir / 'slurm' / '%A_%a.out'}", *sbatch_options,
        str(script), str(sweep_dir), environment=environment,
    ).strip().split(";")[0]  # fmt: skip


def _slurm(*command: str, environment: dict[str, str] | None = None) -> str:
    """Run a SLURM command and return its output; UserInputError with SLURM's message if it fails."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, env=environment)
    except FileNotFoundError:
        raise UserInputError(f"{command[0]} not found: --slurm needs the SLURM client commands on PATH") from None
    if result.returncode != 0:
        raise UserInputError(f"{' '.join(command[:3])} ... failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout
