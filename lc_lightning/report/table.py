"""report.md's sections (a table of each sweep beside the paper's numbers, its unfinished runs) and runs.csv."""

import csv
from collections.abc import Callable
from pathlib import Path

from lc_lightning.report.paper import recipe_differences
from lc_lightning.report.results import ACCURACIES, METRICS, Group, RunResult, Stats, SweepResults
from lc_lightning.run_directory import RunDirectory
from lc_lightning.run_lock import holder
from lc_lightning.sweep.grid import value_name

NO_NUMBER = "—"
METRIC_HEADERS = {
    "val/acc": "val/acc [%]",
    "val/acc_top5": "top-5 [%]",
    "val/fgsm_acc": "FGSM acc [%]",
    "filters/entropy_first": "entropy first",
    "filters/entropy_last": "entropy last",
}
PAPER_HEADERS = {"val/acc": "paper [%]", "val/acc_top5": "paper top-5 [%]"}
RESUME_HINT = (
    "To finish unfinished runs, run the lc-sweep command that made the sweep again with the same arguments (grid "
    "file or --config/--axis, --dir): it skips finished runs, resumes the others from their newest checkpoint and "
    "starts the missing ones."
)


def format_stats(stats: Stats | None, metric: str) -> str:
    """A table cell: ``"92.34 ± 0.24"`` (accuracies in percent, 2 decimals), ``"1.023 ± 0.011"``
    (other metrics, 3 decimals), the mean alone for a single run, ``—`` for no run."""
    if stats is None:
        return NO_NUMBER
    scale, decimals = (100, 2) if metric in ACCURACIES else (1, 3)
    mean = f"{stats.mean * scale:.{decimals}f}"
    return mean if stats.std is None else f"{mean} ± {stats.std * scale:.{decimals}f}"


def format_paper(number: tuple[float, float | None] | None) -> str:
    """A paper cell: ``"92.55 ± 0.28"``, ``"72.31"`` where the paper gives no std, ``—`` where it has no number."""
    if number is None:
        return NO_NUMBER
    mean, std = number
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def markdown_table(results: SweepResults) -> str:
    """The sweep's table: one row per group; a column per varying axis but the seed, ``runs``
    (finished/total), then each metric some finished run logged, the paper's number beside
    val/acc and top-5 where the paper has one for some group."""
    columns: list[tuple[str, Callable[[Group], str]]] = [
        (results.axis_name(key), lambda group, key=key: results.value_text(key, group.values[key]))
        for key in results.axes
    ]
    columns.append(("runs", lambda group: f"{len(group.finished)}/{len(group.runs)}"))
    for metric in results.metrics():
        columns.append((METRIC_HEADERS[metric], lambda group, metric=metric: format_stats(group.stats(metric), metric)))
        if metric in PAPER_HEADERS and any(metric in group.paper for group in results.groups):
            columns.append((PAPER_HEADERS[metric], lambda group, metric=metric: format_paper(group.paper.get(metric))))
    lines = [
        _row(header for header, _ in columns),
        _row("---" if index < len(results.axes) else "---:" for index in range(len(columns))),
    ]
    lines += [_row(cell(group) for _, cell in columns) for group in results.groups]
    return "\n".join(lines)


def recipe_note(results: SweepResults) -> str | None:
    """A note where finished runs with paper numbers left the paper's recipe (paper.recipe_differences),
    e.g. "the paper's numbers are for its recipe; these runs differ in trainer.max_epochs: 2 (paper:
    75)"; None where none did."""
    differences: dict[str, tuple[set[str], str]] = {}
    for result in results.finished:
        for key, (ours, theirs) in recipe_differences(result.config).items():
            differences.setdefault(key, (set(), value_name(theirs)))[0].add(value_name(ours))
    if not differences:
        return None
    listed = "; ".join(
        f"{key}: {', '.join(sorted(ours))} (paper: {theirs})" for key, (ours, theirs) in differences.items()
    )
    return f"Note: the paper's numbers are for its recipe; these runs differ in {listed}."


def describe_state(result: RunResult) -> str:
    """Why a run is not in the table: ``missing (never started)``, ``failed: <error>``,
    ``interrupted: <error>``, ``died: <error>`` or ``running (in use by <process>)``."""
    if result.status is None:
        return "missing (never started)"
    if result.state == "running":
        return f"running (in use by {holder(result.run_dir.path) or 'another process'})"
    error = " ".join((result.status.error or "").split())
    return f"{result.state}: {error}" if error else result.state


def sweep_section(results: SweepResults, plots: list[str]) -> str:
    """The Markdown section of one sweep: heading, table, epochs note, unfinished runs with their
    state and directory and how to resume them, and the ``plots`` (paths relative to report.md)."""
    parts = [
        f"## {results.name}",
        f"`{results.directory.path}`: {len(results.runs)} runs, {len(results.finished)} finished. "
        "Each row: mean ± sample standard deviation over the finished runs (seeds) that logged the metric.",
        markdown_table(results),
    ]
    note = recipe_note(results)
    if note is not None:
        parts.append(note)
    unfinished = [result for result in results.runs if result.state != "finished"]
    if unfinished:
        listed = "\n".join(f"- `{r.run.name}`: {describe_state(r)} (`{r.run_dir.path}`)" for r in unfinished)
        parts.append(f"### Runs not finished (left out of the table and plots)\n\n{listed}\n\n{RESUME_HINT}")
    evaluations = [evaluation_line(result, evaluation) for result in results.runs for evaluation in result.evaluations]
    if evaluations:
        parts.append("### Evaluations of saved checkpoints (lc-train validate, test)\n\n" + "\n".join(evaluations))
    parts += [f"![{Path(plot).stem}]({plot})" for plot in plots]
    return "\n\n".join(parts) + "\n"


def evaluation_line(result: RunResult, evaluation: RunDirectory) -> str:
    """A list item for one evaluation of a run's checkpoint: its folder, the checkpoint, its state
    and each metric of METRICS it logged (``test/...`` in place of ``val/...`` for a test)."""
    status = evaluation.status()
    metrics = status.metrics if status is not None else {}
    prefix = "test/" if evaluation.path.name.startswith("test_") else "val/"
    values = [
        f"{name} {format_stats(Stats(metrics[name], None, 1), metric)}{' %' if metric in ACCURACIES else ''}"
        for metric in METRICS
        if (name := metric.replace("val/", prefix)) in metrics
    ]
    state = "never started" if status is None else status.state
    checkpoint = evaluation.config().get("ckpt_path")
    return f"- `{result.run.name}/{evaluation.path.name}` (checkpoint `{checkpoint}`): " + "; ".join([state, *values])


def write_runs_csv(path: Path, sweeps: list[SweepResults]) -> None:
    """Write ``path``: one row per run of every sweep, with its name, sweep directory, the value of
    each axis (as spelled in run names; blank where its grid has no such axis), its state and the
    final value of each of METRICS at full precision (blank where it logged none)."""
    axes = list(dict.fromkeys(key for results in sweeps for result in results.runs for key in result.run.values))
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["run", "sweep", *axes, "state", *METRICS])
        for results in sweeps:
            for result in results.runs:
                values = [value_name(result.run.values[key]) if key in result.run.values else "" for key in axes]
                scalars = [repr(result.scalars[metric]) if metric in result.scalars else "" for metric in METRICS]
                writer.writerow([result.run.name, str(results.directory.path), *values, result.state, *scalars])


def _row(cells) -> str:
    return "| " + " | ".join(_escape(cell) for cell in cells) + " |"


def _escape(text: str) -> str:
    return text.replace("|", "\\|")
