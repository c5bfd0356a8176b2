"""``lc-sweep``: run a grid of lc-train runs one after another here, or as a SLURM job array.

Re-running the same command skips finished runs (and, with --slurm, runs SLURM still holds) and
resumes the others from their newest checkpoint.
"""

import argparse
import subprocess
import sys
from pathlib import Path

from lc_lightning.errors import UserInputError
from lc_lightning.sweep.directory import SweepDirectory, open_sweep_directory
from lc_lightning.sweep.grid import load_sweep
from lc_lightning.sweep.slurm import SWEEP_SCRIPT, queued_tasks, submit_array

EXAMPLES = """examples:
  lc-sweep configs/grids/figure4.yaml                     every run of Figure 4, here, one after another
  lc-sweep configs/grids/figure4.yaml --slurm -- --partition=gpu --time=2:00:00
  lc-sweep --config configs/sweeps/base.yaml --axis model.network.init_args.expansion=1,8 \\
      --axis seed_everything=0,1 --dir logs/sweeps/mine
  lc-report logs/sweeps/figure4                           the table and plots, once runs finished
"""


def parse_arguments(args: list[str] | None) -> argparse.Namespace:
    """lc-sweep's arguments; those after ``--`` are sbatch's (``sbatch_options``)."""
    parser = argparse.ArgumentParser(
        prog="lc-sweep",
        usage="%(prog)s [GRID] [--config FILE] [--axis KEY=VALUES] [--dir DIR] [--slurm [--sbatch_script PATH] "
        "[-- SBATCH_OPTIONS ...]] [--dry_run]",
        description="Train a grid of lc-train runs: the base configs with every combination of the axes' values.\n"
        "Each run gets its own directory <dir>/<axis=value,...> with its complete config.yaml.\nRunning the same "
        "command again (same grid, --config, --axis and --dir) skips finished runs and resumes unfinished ones\n"
        "from their newest checkpoint. With --slurm, what follows -- goes to sbatch and overrides the batch script's "
        "#SBATCH lines.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "grid", nargs="?", type=Path, help="a grid file (configs/grids/*.yaml): base configs, axes, report"
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FILE",
        help="an lc-train config every run starts from, after the grid file's (repeatable)",
    )
    parser.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="KEY=VALUES",
        help="a dotted lc-train config key and its values, KEY=V1,V2 or KEY=[V1, V2] (YAML), added to every "
        "grid, replacing a grid file's axis of that key; one value sets it for every run (repeatable)",
    )
    parser.add_argument("--dir", type=Path, help="the sweep directory (default: logs/sweeps/<grid file name>)")
    parser.add_argument("--slurm", action="store_true", help="submit the runs as one SLURM job array (sbatch --array)")
    parser.add_argument(
        "--sbatch_script",
        type=Path,
        default=SWEEP_SCRIPT,
        help="the batch script of one array task (default: %(default)s)",
    )
    parser.add_argument(
        "--dry_run", action="store_true", help="check every run's config, say what would run, run nothing"
    )
    args = sys.argv[1:] if args is None else args
    split = args.index("--") if "--" in args else len(args)
    arguments = parser.parse_args(args[:split])
    arguments.sbatch_options = args[split + 1 :]
    if arguments.sbatch_options and not arguments.slurm:
        parser.error(f"sbatch options {arguments.sbatch_options} given without --slurm")
    if arguments.dir is None:
        if arguments.grid is None:
            parser.error("without a grid file, name the sweep directory with --dir")
        arguments.dir = Path("logs") / "sweeps" / arguments.grid.stem
    return arguments


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lc-sweep``. Exit status 0 when every run it ran finished (or it submitted
    the array), 1 when a local run failed, 2 for bad input (message on stderr)."""
    arguments = parse_arguments(args)
    try:
        sweep = load_sweep(arguments.grid, arguments.config, arguments.axis)
        directory = open_sweep_directory(arguments.dir, sweep, write=not arguments.dry_run)
        queued = queued_tasks(directory.path) if arguments.slurm else {}
        pending = _runs_to_train(directory, queued)
        if arguments.dry_run or not pending:
            return
        if arguments.slurm:
            job = submit_array(directory.path, pending, arguments.sbatch_script, arguments.sbatch_options)
            print(f"lc-sweep: submitted job array {job} ({len(pending)} tasks); output in {directory.path / 'slurm'}")
            return
    except UserInputError as error:
        print(f"lc-sweep: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    failed = _train_here(directory, pending)
    if failed:
        raise SystemExit(1)


def _runs_to_train(directory: SweepDirectory, queued: dict[int, str]) -> list[int]:
    """The indices of the runs that are neither finished nor held by SLURM, after one line per run."""
    pending = []
    for index, run in enumerate(directory.runs):
        run_dir = directory.run_dir(run)
        status = run_dir.status()
        if status is not None and status.state == "finished":
            state = "finished"
        elif index in queued:
            state = f"queued or running in SLURM job {queued[index]}"
        else:
            pending.append(index)
            state = "to resume" if run_dir.newest_checkpoint() is not None else "to start"
            if status is not None and status.state in ("failed", "interrupted"):
                state += f" (it {'was ' if status.state == 'interrupted' else ''}{status.state}: {status.error})"
        if run.name in directory.config_changes:
            changed = ", ".join(directory.config_changes[run.name])
            state += f"; it keeps the config it trained with, where the grid's configs now set other values: {changed}"
        print(f"{run.name}: {state}")
    counts = f"{len(directory.runs)} runs, {len(pending)} to train"
    print(f"lc-sweep: {directory.path}: {counts}")
    return pending


def _train_here(directory: SweepDirectory, pending: list[int]) -> list[str]:
    """Train the runs ``pending`` one after another, each in its own lc-train process; return the
    names of those that failed. Ctrl-C stops the current run (which can be resumed) and the sweep."""
    failed = []
    for number, index in enumerate(pending, 1):
        run = directory.runs[index]
        print(f"lc-sweep: [{number}/{len(pending)}] {run.name}", flush=True)
        process = subprocess.Popen([sys.executable, "-m", "lc_lightning.cli", *directory.train_arguments(run)])
        try:
            returncode = process.wait()
        except KeyboardInterrupt:  # lc-train got the Ctrl-C too: let it stop cleanly, then stop
            process.wait()
            print(f"lc-sweep: interrupted during {run.name}; run the same command to resume", file=sys.stderr)
            raise SystemExit(130) from None
        if returncode != 0:
            failed.append(run.name)
            print(f"lc-sweep: {run.name} failed (exit status {returncode})", file=sys.stderr)
    print(f"lc-sweep: {len(pending) - len(failed)} of {len(pending)} runs finished", file=sys.stderr)
    return failed
