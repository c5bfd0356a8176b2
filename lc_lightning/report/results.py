"""The runs of a sweep directory with their state, config and final metrics, grouped by the axes
that vary over the sweep (all but the seed): what lc-report tables and plots."""

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.report.config import config_value
from lc_lightning.report.paper import paper_numbers
from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.sweep.directory import SweepDirectory, read_sweep_directory
from lc_lightning.sweep.grid import SEED_AXIS, Run, axis_names, value_name

METRICS = ("val/acc", "val/acc_top5", "val/fgsm_acc", "filters/entropy_first", "filters/entropy_last")
"""The scalar tags lc-report reads, in the order of its columns."""
ACCURACIES = frozenset({"val/acc", "val/acc_top5", "val/fgsm_acc"})
"""The metrics that are fractions in [0, 1], reported in percent."""


@dataclass(frozen=True)
class RunResult:
    """One run of a sweep: its ``status`` (None: never started), its ``config`` (config.yaml, {}
    where there is none), the final value of each metric it logged (``scalars``, from its status)
    and the ``evaluations`` of its checkpoints (lc-train validate and test)."""

    run: Run
    run_dir: RunDirectory
    status: RunStatus | None
    config: dict
    scalars: dict[str, float]
    evaluations: list[RunDirectory]

    @property
    def state(self) -> str:
        """``missing`` where the run never started, else its status: running, finished, failed or interrupted."""
        return "missing" if self.status is None else self.status.state

    def value(self, key: str) -> Any:
        """The run's value of the axis ``key``; the value in its config where its grid leaves the axis out."""
        return self.run.values[key] if key in self.run.values else config_value(self.config, key)


@dataclass(frozen=True)
class Stats:
    """The ``mean`` and sample standard deviation ``std`` (None for a single value) of ``count`` values."""

    mean: float
    std: float | None
    count: int


def summarise(values: Sequence[float]) -> Stats:
    """Arithmetic mean and sample standard deviation (n - 1) of one or more ``values``."""
    return Stats(statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None, len(values))


@dataclass(frozen=True)
class Group:
    """The runs that share the value of every varying axis but the seed (``values``: axis -> value)."""

    values: dict[str, Any]
    runs: list[RunResult]

    @property
    def finished(self) -> list[RunResult]:
        return [result for result in self.runs if result.state == "finished"]

    def stats(self, metric: str) -> Stats | None:
        """``metric`` over the finished runs that logged it, None where none did."""
        values = [result.scalars[metric] for result in self.finished if metric in result.scalars]
        return summarise(values) if values else None

    @property
    def paper(self) -> dict[str, tuple[float, float | None]]:
        """The paper's numbers for these runs (paper.paper_numbers of the first run's config)."""
        return paper_numbers(self.runs[0].config)


@dataclass(frozen=True)
class SweepResults:
    """A sweep directory read for lc-report: every run of its grid in grid order, ``axes`` (the
    varying axes but the seed, in grid order) and ``groups`` (by those axes, in order of first
    appearance in the runs)."""

    directory: SweepDirectory
    axes: list[str]
    runs: list[RunResult]
    groups: list[Group]

    @property
    def name(self) -> str:
        return self.directory.path.name

    @property
    def finished(self) -> list[RunResult]:
        return [result for result in self.runs if result.state == "finished"]

    def metrics(self) -> list[str]:
        """The metrics of METRICS that some finished run logged, in METRICS order."""
        return [metric for metric in METRICS if any(metric in result.scalars for result in self.finished)]

    def axis_name(self, key: str) -> str:
        """The short name of the axis ``key`` (as in the run names)."""
        return axis_names(self.directory.sweep.varying_axes()).get(key, key.rpartition(".")[2])

    def label(self, key: str, value: Any) -> str | None:
        """The label the grid file's ``report.labels`` gives ``value`` of the axis ``key``, or None."""
        for labelled, label in self.directory.sweep.labels.get(key, {}).items():
            # True == 1 in Python; a label for expansion 1 must not name freeze_spatial true
            if labelled == value and isinstance(labelled, bool) == isinstance(value, bool):
                return str(label)
        return None

    def value_text(self, key: str, value: Any) -> str:
        """``value`` of the axis ``key`` as the table shows it: its label, else its spelling in run names."""
        label = self.label(key, value)
        return label if label is not None else value_name(value)


def read_results(path: Path) -> SweepResults:
    """Read the sweep directory ``path``: every run's status, config, final METRICS and evaluations.
    InvalidArgumentError where ``path`` is not a sweep directory lc-sweep wrote."""
    try:
        directory = read_sweep_directory(path)
    except (KeyError, TypeError, AttributeError, yaml.YAMLError) as error:
        raise InvalidArgumentError(f"{path}: its sweep.yaml is not one lc-sweep wrote ({error!r})") from None
    runs = []
    for run in directory.runs:
        run_dir = directory.run_dir(run)
        status = run_dir.status()
        scalars = {metric: value for metric, value in (status.metrics if status else {}).items() if metric in METRICS}
        runs.append(RunResult(run, run_dir, status, run_dir.config(), scalars, run_dir.evaluations()))
    axes = [key for key in directory.sweep.varying_axes() if key != SEED_AXIS]
    groups: dict[str, Group] = {}
    for result in runs:
        values = {key: result.value(key) for key in axes}
        key = json.dumps([values[axis] for axis in axes], sort_keys=True, default=str)
        groups.setdefault(key, Group(values, [])).runs.append(result)
    return SweepResults(directory, axes, runs, list(groups.values()))
