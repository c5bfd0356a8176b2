"""Plots in the style of the paper's Figures 4-7: a metric against one numeric axis (expansion,
width, depth, kernel size), one line per value of the other axes, the baseline as a dashed line."""

import json
from pathlib import Path
from typing import Any

from matplotlib import rcParams
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from lc_lightning.report.results import ACCURACIES, Group, Stats, SweepResults
from lc_lightning.sweep.grid import value_name

LOG_RATIO = 8
"""A log2 x axis where the largest x is at least this many times the smallest."""


def plot_axis(results: SweepResults) -> str | None:
    """The x axis of the sweep's plots: the grid file's ``report.x`` if its values are numbers, else
    the first varying axis but the seed whose values are numbers, two or more of them (bools are
    not; None, the baseline without LC-Blocks, is allowed beside them); None where there is no such
    axis."""
    sweep = results.directory.sweep
    candidates = [sweep.x] if sweep.x is not None else results.axes
    for key in candidates:
        values = [result.value(key) for result in results.runs]
        numbers = {value for value in values if _is_number(value)}
        if numbers and all(value is None or _is_number(value) for value in values):
            if sweep.x is not None or len(numbers) > 1:
                return key
    return None


def metric_figure(results: SweepResults, metric: str, x: str) -> Figure:
    """The figure of ``metric`` (accuracies in percent) against the axis ``x`` over the sweep's
    finished runs: per series (a value of the other varying axes but the seed) the mean at each x
    with markers and a ± std band; groups whose x is None (the baseline) as a dashed horizontal
    line with its band; the paper's numbers as squares in the series' colour edged black, with
    error bars, labelled "paper: <series label>" (at x None a black dotted line labelled "paper:
    <baseline label>")."""
    scale = 100 if metric in ACCURACIES else 1
    series: dict[str, list[Group]] = {}
    for group in results.groups:
        others = [group.values[key] for key in results.axes if key != x]
        series.setdefault(json.dumps(others, sort_keys=True, default=str), []).append(group)
    baselines = sum(any(_x(group, x) is None for group in groups) for groups in series.values())
    figure = Figure(figsize=(6.4, 4.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for index, groups in enumerate(series.values()):
        color, name = colors[index % len(colors)], _series_label(results, groups[0], x)
        baseline = _label(results, x, None) + (f", {name}" if baselines > 1 and name else "")
        points = [(_x(group, x), group.stats(metric)) for group in groups if _x(group, x) is not None]
        points = sorted(((position, stats) for position, stats in points if stats is not None), key=lambda p: p[0])
        if points:
            xs = [position for position, _ in points]
            _draw_band(axes, xs, [stats for _, stats in points], scale, color, name or "mean ± std")
        paper_label = f"paper: {name}" if name else "paper"  # once per series in the legend
        for group in groups:
            position, stats, paper = _x(group, x), group.stats(metric), group.paper.get(metric)
            if position is None and stats is not None:
                mean, std = stats.mean * scale, (stats.std or 0.0) * scale
                axes.axhline(mean, linestyle="--", color=color, label=baseline)
                axes.axhspan(mean - std, mean + std, color=color, alpha=0.15, linewidth=0)
            if position is None and paper is not None:
                axes.axhline(paper[0], linestyle=":", color="black", label=f"paper: {baseline}")
            elif paper is not None:
                # in the series' colour, edged black: at one x the paper can have a number per series
                axes.errorbar([position], [paper[0]], yerr=None if paper[1] is None else [paper[1]], fmt="s",
                              color=color, markeredgecolor="black", ecolor="black", capsize=3, markersize=6,
                              zorder=3, label=paper_label)  # fmt: skip
                paper_label = "_nolegend_"
    positions = {_x(group, x) for group in results.groups if group.stats(metric) or metric in group.paper}
    _set_x_ticks(axes, sorted(position for position in positions if position is not None))
    axes.set_xlabel(results.axis_name(x))
    axes.set_ylabel(f"{metric} [%]" if metric in ACCURACIES else metric)
    axes.set_title(results.name)
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def write_plots(results: SweepResults, out: Path, prefix: str = "") -> list[Path]:
    """Write ``out/<prefix><metric>.png`` (``/`` in the metric made ``_``, e.g. ``val_acc.png``) for
    each metric some finished run logged, plotted against plot_axis; none where there is no such axis.
    Returns the paths written."""
    x = plot_axis(results)
    if x is None:
        return []
    paths = []
    for metric in results.metrics():
        path = Path(out) / f"{prefix}{metric.replace('/', '_')}.png"
        metric_figure(results, metric, x).savefig(path, dpi=150)
        paths.append(path)
    return paths


def _draw_band(axes: Axes, xs: list, stats: list[Stats], scale: float, color: str, label: str) -> None:
    """The means at ``xs`` as a line with markers, over a band of ± one std."""
    means = [item.mean * scale for item in stats]
    stds = [(item.std or 0.0) * scale for item in stats]
    axes.plot(xs, means, marker="o", color=color, label=label)
    lows = [mean - std for mean, std in zip(means, stds, strict=True)]
    highs = [mean + std for mean, std in zip(means, stds, strict=True)]
    axes.fill_between(xs, lows, highs, color=color, alpha=0.2, linewidth=0)


def _set_x_ticks(axes: Axes, positions: list) -> None:
    """Ticks at the ``positions``, on a log2 scale where they span a factor of LOG_RATIO or more."""
    if not positions:
        return
    if positions[0] > 0 and positions[-1] / positions[0] >= LOG_RATIO:
        axes.set_xscale("log", base=2)
        axes.xaxis.set_minor_locator(NullLocator())
    axes.set_xticks(positions, [value_name(position) for position in positions])


def _x(group: Group, x: str) -> Any:
    return group.values[x] if x in group.values else group.runs[0].value(x)


def _series_label(results: SweepResults, group: Group, x: str) -> str:
    """The series' legend label: the labels of its values of the varying axes other than ``x``."""
    return ", ".join(_label(results, key, group.values[key]) for key in results.axes if key != x)


def _label(results: SweepResults, key: str, value: Any) -> str:
    label = results.label(key, value)
    return label if label is not None else f"{results.axis_name(key)}={value_name(value)}"


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
