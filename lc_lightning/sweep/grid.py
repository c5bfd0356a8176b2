"""Grids of lc-train runs: base configs plus axes, dotted config keys each with a list of values.

A grid file (configs/grids/) is YAML::

    configs: [../sweeps/base.yaml]            # lc-train configs every run starts from
    grid:                                     # a mapping of axes, or a list of them
      - model.network.init_args.expansion: [1, 8, 128]
        model.freeze_spatial: [true, false]
        seed_everything: [0, 1, 2, 3]
      - model.network.init_args.expansion: [null]   # the baseline: no LC-Blocks
        model.freeze_spatial: [false]
        seed_everything: [0, 1, 2, 3]
    report:                                   # optional, for lc-report's plots
      x: model.network.init_args.expansion    # the plots' x axis
      labels: {model.freeze_spatial: {true: LC frozen random, false: LC learnable}}

The runs are the union of the products of the mappings' axes. Paths are read as in a config file:
``configs`` and any string value naming an existing file are relative to the grid file.
"""

import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lc_lightning.errors import InvalidArgumentError

SEED_AXIS = "seed_everything"
EXPONENT_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")
KNOWN_SECTIONS = {"configs", "grid", "report"}
KNOWN_REPORT_KEYS = {"x", "labels"}


@dataclass(frozen=True)
class Run:
    """One run of a sweep: ``name`` (its directory, from the axes that vary over the sweep) and
    ``values``, the value of every axis of its grid by dotted config key."""

    name: str
    values: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """A grid of runs. ``configs``: absolute paths of the lc-train config files every run starts
    from; ``grids``: one or more mappings of dotted config key -> list of values (the runs are
    the union of their products); ``x`` and ``labels``: how lc-report plots it."""

    configs: tuple[str, ...]
    grids: tuple[dict[str, list], ...]
    x: str | None = None
    labels: dict[str, dict] = field(default_factory=dict)

    def runs(self) -> list[Run]:
        """Every run, in grid order, each once; raises InvalidArgumentError where two different
        runs would get the same directory name."""
        combinations = []
        for grid in self.grids:
            for values in itertools.product(*grid.values()):
                combination = dict(zip(grid, values, strict=True))
                if combination not in combinations:
                    combinations.append(combination)
        names = axis_names(self.varying_axes())
        runs, by_name = [], {}
        for values in combinations:
            name = ",".join(f"{names[key]}={value_name(values[key])}" for key in names if key in values) or "run"
            if name in by_name:
                raise InvalidArgumentError(
                    f"two runs of the grid would share the directory {name!r}: {by_name[name]} and {values}; "
                    "give the values distinct names (e.g. config files with distinct file names)"
                )
            by_name[name] = values
            runs.append(Run(name, values))
        return runs

    def varying_axes(self) -> list[str]:
        """The axes whose value differs between runs (or that some grids leave out), in grid order:
        they name the runs, and lc-report groups by them."""
        keys = list(dict.fromkeys(key for grid in self.grids for key in grid))
        return [
            key
            for key in keys
            if any(key not in grid for grid in self.grids)
            or len({json.dumps(value, sort_keys=True) for grid in self.grids for value in grid[key]}) > 1
        ]

    def record(self) -> dict:
        """The sweep as a plain dict (what ``sweep.yaml`` holds besides the run names)."""
        return {"configs": list(self.configs), "grid": [dict(grid) for grid in self.grids],
                "report": {"x": self.x, "labels": self.labels}}  # fmt: skip


def load_sweep(grid_file: Path | None, configs: list[str], axes: list[str]) -> Sweep:
    """The sweep of ``grid_file`` (None: no file), with the ``configs`` (paths relative to the
    working directory) appended to its configs and the ``axes`` (``KEY=V1,V2`` or ``KEY=[V1, V2]``,
    each value YAML) added to every one of its grids."""
    definition = _read_grid_file(grid_file) if grid_file is not None else {}
    base = grid_file.parent if grid_file is not None else Path.cwd()
    grids = definition.get("grid") or [{}]
    grids = grids if isinstance(grids, list) else [grids]
    for grid in grids:
        if not isinstance(grid, dict):
            raise InvalidArgumentError(f"{grid_file}: each grid must be a mapping of dotted config keys to value lists")
    extra = dict(_parse_axis(axis) for axis in axes)
    grids = [{**{key: _values(key, values, base) for key, values in grid.items()}, **extra} for grid in grids]
    if not any(grids):
        raise InvalidArgumentError("the sweep has no axes: give a grid file or --axis KEY=VALUES")
    report = definition.get("report") or {}
    unknown = set(report) - KNOWN_REPORT_KEYS
    if unknown:
        known = sorted(KNOWN_REPORT_KEYS)
        raise InvalidArgumentError(f"{grid_file}: unknown report key(s) {sorted(unknown)}; known: {known}")
    sweep = Sweep(
        configs=tuple(_existing_file(path, base) for path in definition.get("configs") or [])
        + tuple(_existing_file(path, Path.cwd()) for path in configs),
        grids=tuple(grids),
        x=report.get("x"),
        labels=report.get("labels") or {},
    )
    if sweep.x is not None and not any(sweep.x in grid for grid in sweep.grids):
        raise InvalidArgumentError(f"{grid_file}: report.x {sweep.x!r} is not an axis of the grid")
    sweep.runs()  # fails early on clashing run names
    return sweep


def axis_names(keys: list[str]) -> dict[str, str]:
    """A short name per dotted key: its last part (``expansion``), the whole key where two keys
    share a last part."""
    last = [key.rpartition(".")[2] for key in keys]
    return {key: short if last.count(short) == 1 else key for key, short in zip(keys, last, strict=True)}


def value_name(value: Any) -> str:
    """How a value appears in a run's name: YAML spelling of scalars (``null``, ``true``, ``8``),
    the file name without suffix for a config file (an absolute ``*.yaml`` path), compact JSON
    otherwise; never a ``/``. It depends on the value alone, so a sweep directory moved to
    another machine keeps its names."""
    if isinstance(value, str):
        path = Path(value)
        text = path.stem if path.is_absolute() and path.suffix in (".yaml", ".yml") else value
    elif value is None or isinstance(value, (bool, int, float)):
        text = json.dumps(value)
    else:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return text.replace("/", "-")


def read_yaml(path: Path):
    """The YAML document in the file ``path``; InvalidArgumentError naming the file, line and column where it
    is not valid YAML. OSError where it cannot be read."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise InvalidArgumentError(f"{where}: invalid YAML: {error.problem or error.context}") from None
    except yaml.YAMLError as error:
        raise InvalidArgumentError(f"{path}: invalid YAML: {' '.join(str(error).split())}") from None


def _read_grid_file(path: Path) -> dict:
    try:
        definition = read_yaml(path)
    except OSError as error:
        raise InvalidArgumentError(f"cannot read the grid file {path}: {error.strerror}") from None
    if not isinstance(definition, dict):
        raise InvalidArgumentError(f"{path}: a grid file is a mapping with the keys {sorted(KNOWN_SECTIONS)}")
    unknown = set(definition) - KNOWN_SECTIONS
    if unknown:
        known = sorted(KNOWN_SECTIONS)
        raise InvalidArgumentError(f"{path}: unknown key(s) {sorted(unknown)}; a grid file has {known}")
    return definition


def _parse_axis(axis: str) -> tuple[str, list]:
    """``KEY=V1,V2`` or ``KEY=[V1, V2]`` -> (KEY, [V1, V2]), values read as YAML, files made absolute."""
    key, equals, text = axis.partition("=")
    if not equals or not key or not text:
        raise InvalidArgumentError(f"--axis {axis!r}: write it as KEY=VALUE1,VALUE2 (e.g. seed_everything=0,1,2,3)")
    try:
        values = yaml.safe_load(text) if text.lstrip().startswith("[") else [yaml.safe_load(v) for v in text.split(",")]
    except yaml.YAMLError:
        try:  # one quoted value with commas in it, such as "0,1"
            values = [yaml.safe_load(text)]
        except yaml.YAMLError as error:
            problem = getattr(error, "problem", None) or " ".join(str(error).split())
            raise InvalidArgumentError(
                f"--axis {axis!r}: its values are not valid YAML ({problem}); write it as KEY=VALUE1,VALUE2 "
                "or KEY=[VALUE1, VALUE2]"
            ) from None
    return key, _values(key, values, Path.cwd())


def _values(key: str, values: Any, base: Path) -> list:
    """The axis's values as a non-empty list: strings naming a file relative to ``base`` made
    absolute, numbers such as ``1e-3`` (a string to YAML 1.1, which wants a dot) made floats."""
    values = values if isinstance(values, list) else [values]
    if not values:
        raise InvalidArgumentError(f"the axis {key} has no values")
    return [_value(value, base) for value in values]


def _value(value: Any, base: Path) -> Any:
    if not isinstance(value, str):
        return value
    if (base / value).is_file():
        return str((base / value).resolve())
    return float(value) if EXPONENT_NUMBER.fullmatch(value) else value


def _existing_file(path: str, base: Path) -> str:
    resolved = (base / path).resolve()
    if not resolved.is_file():
        raise InvalidArgumentError(f"config file {path} not found (looked for {resolved})")
    return str(resolved)
