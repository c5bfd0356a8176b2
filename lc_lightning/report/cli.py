"""``lc-report``: the results of finished sweeps beside the paper's, as report.md, runs.csv and plots."""

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from lc_lightning.errors import InvalidArgumentError, UserInputError
from lc_lightning.report.plots import plot_axis, write_plots
from lc_lightning.report.results import SweepResults, read_results
from lc_lightning.report.table import RESUME_HINT, describe_state, sweep_section, write_runs_csv

EXAMPLES = """examples:
  lc-report logs/sweeps/figure4                       report.md, runs.csv and plots in logs/sweeps/figure4/report
  lc-report logs/sweeps/table1_* --out reports/table1  several sweeps in one report
"""


def parse_arguments(args: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="lc-report",
        description="Report the finished runs of sweeps made by lc-sweep: report.md (a table per sweep, mean ± sample\n"
        "std over seeds, beside the paper's numbers; printed to stdout), runs.csv (every run's final metrics) and\n"
        "one plot per metric against the sweep's numeric axis. Unfinished runs are listed, not counted.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("sweep_dirs", nargs="+", type=Path, metavar="SWEEP_DIR", help="a directory lc-sweep wrote")
    parser.add_argument("--out", type=Path, help="where to write the report (default: <first SWEEP_DIR>/report)")
    return parser.parse_args(args)


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lc-report``. Exit status 0 when it wrote the report (unfinished runs
    included), 2 for bad input (not a sweep directory, no finished run...), with one line on stderr."""
    arguments = parse_arguments(args)
    try:
        sweeps = [read_results(path) for path in arguments.sweep_dirs]
        _check(sweeps)
        out = arguments.out or sweeps[0].directory.path / "report"
        out.mkdir(parents=True, exist_ok=True)
    except UserInputError as error:
        _fail(str(error))
    except OSError as error:
        _fail(f"cannot create the report directory {error.filename}: {error.strerror}")
    sections, written = [], []
    for results in sweeps:
        for result in results.runs:
            if result.state != "finished":
                print(f"lc-report: {results.name}/{result.run.name}: {describe_state(result)}", file=sys.stderr)
        if plot_axis(results) is None:
            print(f"lc-report: no plots for {results.name}: {_no_axis_reason(results)}", file=sys.stderr)
        plots = write_plots(results, out, prefix=f"{results.name}_" if len(sweeps) > 1 else "")
        written += plots
        sections.append(sweep_section(results, [plot.name for plot in plots]))
    if any(result.state != "finished" for results in sweeps for result in results.runs):
        print(f"lc-report: {RESUME_HINT}", file=sys.stderr)
    report = "# lc-report\n\n" + "\n".join(sections)
    (out / "report.md").write_text(report)
    write_runs_csv(out / "runs.csv", sweeps)
    print(report, end="")
    for path in [out / "report.md", out / "runs.csv", *written]:
        print(f"lc-report: wrote {path}", file=sys.stderr)


def _check(sweeps: list[SweepResults]) -> None:
    """InvalidArgumentError where no run of any sweep finished or two sweeps would share plot names."""
    if not any(results.finished for results in sweeps):
        states = ", ".join(f"{results.directory.path}: {_state_counts(results)}" for results in sweeps)
        raise InvalidArgumentError(f"no finished run to report ({states}); run lc-sweep first, or again to finish them")
    names = [results.name for results in sweeps]
    clashing = sorted({name for name in names if names.count(name) > 1})
    if clashing:
        raise InvalidArgumentError(f"several sweep directories are named {clashing}; give each sweep its own name")


def _state_counts(results: SweepResults) -> str:
    states = [result.state for result in results.runs]
    return ", ".join(f"{states.count(state)} {state}" for state in dict.fromkeys(states))


def _no_axis_reason(results: SweepResults) -> str:
    x = results.directory.sweep.x
    if x is not None:
        return f"the values of its report.x axis {x} are not all numbers"
    return "no varying axis has numbers for values (report.x in the grid file names the x axis)"


def _fail(message: str) -> NoReturn:
    print(f"lc-report: error: {message}", file=sys.stderr)
    raise SystemExit(2)
