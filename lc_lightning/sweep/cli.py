"""``lc-sweep``: run a grid of lc-train runs one after another here, or as a SLURM job array.

Re-running the same command skips finished runs (and, with --slurm, runs SLURM still holds), as well
as runs another process trains (a second lc-sweep of the same grid), and resumes the others from their
newest checkpoint.
"""

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from lc_lightning.errors import RunHeldError, UserInputError
from lc_lightning.faults import describe_fault, machine_fault
from lc_lightning.run_lock import RunLock, holder
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
    the array, or another process trains the rest), 1 when a local run failed, 2 for bad input
    (message on stderr), 1 with one line for a full disk or an unwritable directory, and 130, 143 or
    129 when SIGINT, SIGTERM or SIGHUP stopped it."""
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
        failed = _train_here(directory, pending)
    except UserInputError as error:
        print(f"lc-sweep: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    except OSError as error:
        fault = machine_fault(error)
        if fault is None:
            raise
        print(
            f"lc-sweep: error: {describe_fault(fault)}; once that is fixed, run the same command again", file=sys.stderr
        )
        raise SystemExit(1) from None
    if failed:
        raise SystemExit(1)


def _runs_to_train(directory: SweepDirectory, queued: dict[int, str]) -> list[int]:
    """The indices of the runs that are neither finished, held by another process nor held by SLURM,
    after one line per run."""
    pending = []
    for index, run in enumerate(directory.runs):
        run_dir = directory.run_dir(run)
        status = run_dir.status()
        in_use = holder(run_dir.path)
        if status is not None and status.state == "finished":
            state = "finished"
        elif index in queued:
            state = f"queued or running in SLURM job {queued[index]}"
        elif in_use is not None:
            state = f"in use by {in_use}"
        else:
            pending.append(index)
            state = "to resume" if run_dir.latest_checkpoint() is not None else "to start"
            if status is not None and status.state in ("failed", "interrupted", "died"):
                state += f" (it {'was ' if status.state == 'interrupted' else ''}{status.state}: {status.error})"
        if run.name in directory.config_changes:
            changed = ", ".join(directory.config_changes[run.name])
            state += f"; it keeps the config it trained with, where the grid's configs now set other values: {changed}"
        print(f"{run.name}: {state}")
    counts = f"{len(directory.runs)} runs, {len(pending)} to train"
    print(f"lc-sweep: {directory.path}: {counts}")
    return pending


def _train_here(directory: SweepDirectory, pending: list[int]) -> list[str]:
    """Train the runs ``pending`` one after another, each in its own lc-train process that holds the
    run with this one (lc_lightning.run_lock); return the names of those that failed. A run another
    process holds by then (a second lc-sweep of the grid) is skipped, one finished meanwhile too.
    SIGINT (Ctrl-C) and SIGTERM go to the lc-train process, which stops cleanly (the run can be
    resumed); then the sweep stops, with the exit status of that signal."""
    failed, skipped = [], []
    with _ForwardedSignals() as signals:
        for number, index in enumerate(pending, 1):
            run = directory.runs[index]
            run_dir = directory.run_dir(run)
            try:
                lock = run_dir.hold("lc-sweep")
            except RunHeldError as error:
                skipped.append(run.name)
                print(f"lc-sweep: [{number}/{len(pending)}] {run.name}: skipped, {error.holder} trains it", flush=True)
                continue
            try:
                status = run_dir.status()
                if status is not None and status.state == "finished":
                    skipped.append(run.name)
                    print(f"lc-sweep: [{number}/{len(pending)}] {run.name}: finished meanwhile", flush=True)
                    continue
                print(f"lc-sweep: [{number}/{len(pending)}] {run.name}", flush=True)
                command = [sys.executable, "-m", "lc_lightning.cli", *directory.train_arguments(run)]
                returncode = signals.run(command, lock)
            finally:
                run_dir.let_go(lock)
            if signals.received:
                name = signal.Signals(signals.received[0]).name
                print(f"lc-sweep: stopped by {name} during {run.name}; run the same command to resume", file=sys.stderr)
                raise SystemExit(128 + signals.received[0])
            if returncode != 0:
                failed.append(run.name)
                print(f"lc-sweep: {run.name} failed (exit status {returncode})", file=sys.stderr)
    trained = len(pending) - len(failed) - len(skipped)
    others = f"; {len(skipped)} trained by another process: {', '.join(skipped)}" if skipped else ""
    print(f"lc-sweep: {trained} of {len(pending)} runs finished{others}", file=sys.stderr)
    return failed


class _ForwardedSignals:
    """While entered, SIGINT, SIGTERM and SIGHUP are recorded (``received``) and forwarded (FORWARDED) to
    the process ``run`` waits for, instead of stopping this one at once."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._process: subprocess.Popen | None = None
        self._previous = {}

    def __enter__(self) -> "_ForwardedSignals":
        self._previous = {signum: signal.signal(signum, self._forward) for signum in FORWARDED}
        return self

    def __exit__(self, *exception) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def run(self, command: list[str], lock: RunLock) -> int:
        """Run ``command`` in a session of its own (a Ctrl-C in the terminal reaches it once, forwarded by
        this process), holding ``lock`` with it, unless a signal came already; its exit status."""
        if self.received:
            return 128 + self.received[0]
        self._process = subprocess.Popen(
            command,
            pass_fds=(lock.descriptor,),
            env={**os.environ, **lock.inheritable_environment()},
            start_new_session=True,
        )
        if self.received:  # came while it started
            self._process.send_signal(FORWARDED[self.received[0]])
        try:
            return self._process.wait()
        finally:
            self._process = None

    def _forward(self, signum, frame) -> None:
        self.received.append(signum)
        if self._process is not None:
            self._process.send_signal(FORWARDED[signum])


# What lc-sweep sends its lc-train for each signal it gets: a closed terminal (SIGHUP) stops it cleanly too.
FORWARDED = {signal.SIGINT: signal.SIGINT, signal.SIGTERM: signal.SIGTERM, signal.SIGHUP: signal.SIGTERM}
