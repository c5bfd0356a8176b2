"""A sweep directory: ``sweep.yaml`` (the grid), ``runs.txt`` (run names; line i is SLURM array
task i) and one run directory (lc_lightning.run_directory) per run, ``<sweep dir>/<run name>/``."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_directory import RunDirectory, config_leaves, write_atomically
from lc_lightning.run_lock import holder
from lc_lightning.sweep.grid import Run, Sweep

SWEEP_FILE = "sweep.yaml"
RUNS_FILE = "runs.txt"


@dataclass(frozen=True)
class SweepDirectory:
    """The directory ``path`` of ``sweep`` and its ``runs``; ``config_changes``: for each run that
    keeps the config it trained with, the keys the grid now sets otherwise (open_sweep_directory)."""

    path: Path
    sweep: Sweep
    runs: list[Run]
    config_changes: dict[str, list[str]] = field(default_factory=dict)

    def run_dir(self, run: Run) -> RunDirectory:
        return RunDirectory(self.path / run.name)

    def train_arguments(self, run: Run) -> list[str]:
        """The arguments of ``lc-train fit`` that train (or resume) ``run`` from its config.yaml."""
        return ["fit", "--config", str(self.run_dir(run).config_file), "--ckpt_path", "last"]


def open_sweep_directory(path: Path, sweep: Sweep, write: bool = True) -> SweepDirectory:
    """Create or reopen the directory of ``sweep`` at ``path`` and create each run with its config.

    Every run's config is built as ``lc-train fit`` would build it, before anything is written:
    a bad one raises InvalidArgumentError naming the run. A run that has trained (it finished
    or has a checkpoint) keeps the config it trained with; where the grid now gives it another
    one, ``config_changes`` lists the keys that differ. The others get the config the grid gives
    now, but for runs another process holds. A directory that holds a different sweep (other configs,
    axes or axis order) raises InvalidArgumentError. ``write`` false checks and writes nothing.
    """
    from lc_lightning.sweep.fit_config import (
        FitConfigParser,  # here, so that lc-report reads sweeps without importing Lightning
    )

    path = path.resolve()
    runs = sweep.runs()
    recorded = path / SWEEP_FILE
    if recorded.is_file():
        previous = yaml.safe_load(recorded.read_text())
        if _definition(previous) != _definition(sweep.record()) or previous.get("runs") != [r.name for r in runs]:
            raise InvalidArgumentError(
                f"{path} holds another sweep (its {SWEEP_FILE} has other configs or axes, or the same in another "
                "order); run the command that made it, or give this sweep its own directory with --dir"
            )
    directory = SweepDirectory(path, sweep, runs)
    parser, configs = FitConfigParser(), {}
    for run in runs:
        try:
            config = parser.fit_config(_config_arguments(sweep, run, path))
        except InvalidArgumentError as error:
            raise InvalidArgumentError(f"run {run.name}: lc-train rejects its config: {error}") from None
        run_dir = directory.run_dir(run)
        if run_dir.has_trained():
            changed = _differing_keys(run_dir.config(), yaml.safe_load(config))
            if changed:
                directory.config_changes[run.name] = changed
        else:
            configs[run.name] = config
    if not write:
        return directory
    _write_if_changed(recorded, yaml.safe_dump({**sweep.record(), "runs": [run.name for run in runs]}, sort_keys=False))
    _write_if_changed(path / RUNS_FILE, "".join(f"{run.name}\n" for run in runs))
    for run in runs:
        run_dir = directory.run_dir(run)
        if run.name in configs and run_dir.config_text() != configs[run.name] and holder(run_dir.path) is None:
            run_dir.create(configs[run.name])
    return directory


def read_sweep_directory(path: Path) -> SweepDirectory:
    """The sweep that lc-sweep recorded in ``path``; InvalidArgumentError where there is none."""
    recorded = Path(path).resolve() / SWEEP_FILE
    if not recorded.is_file():
        raise InvalidArgumentError(f"{path} is not a sweep directory: it has no {SWEEP_FILE} (lc-sweep writes it)")
    record = yaml.safe_load(recorded.read_text())
    report = record.get("report") or {}
    sweep = Sweep(tuple(record["configs"]), tuple(record["grid"]), report.get("x"), report.get("labels") or {})
    runs = sweep.runs()
    if len(record["runs"]) != len(runs):
        raise InvalidArgumentError(f"{recorded} lists {len(record['runs'])} runs but its grid has {len(runs)}")
    # the names lc-sweep gave the runs, whatever this version would call them
    return SweepDirectory(
        recorded.parent, sweep, [Run(name, run.values) for name, run in zip(record["runs"], runs, strict=True)]
    )


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically unless it holds that text already (as when two lc-sweep of
    one grid start together)."""
    if not path.is_file() or path.read_text() != text:
        write_atomically(path, lambda file: file.write(text.encode()))


def _config_arguments(sweep: Sweep, run: Run, path: Path) -> list[str]:
    """lc-train's arguments for the run's config: the base configs, the run's axis values and its
    run directory ``<path>/<run name>`` (TensorBoard: save_dir/name/version)."""
    arguments = [argument for config in sweep.configs for argument in ("--config", config)]
    for key, value in run.values.items():
        arguments.append(f"--{key}={value if isinstance(value, str) else json.dumps(value)}")
    return arguments + [
        f"--trainer.logger.init_args.save_dir={path.parent}",
        f"--trainer.logger.init_args.name={path.name}",
        f"--trainer.logger.init_args.version={run.name}",
        f"--trainer.default_root_dir={path / run.name}",
    ]


def _definition(record: dict) -> tuple:
    """What makes two sweeps the same: their configs and axes in order (not how they are reported)."""
    return json.dumps(record["configs"]), json.dumps(record["grid"])


def _differing_keys(saved: dict, new: dict) -> list[str]:
    """The dotted keys whose values differ between two configs (but a seed chosen at random,
    ``seed_everything: true``)."""
    saved, new = config_leaves(saved), config_leaves(new)
    random_seed = new.get("seed_everything") is True
    keys = [key for key in dict.fromkeys([*saved, *new]) if not (key == "seed_everything" and random_seed)]
    return [key for key in keys if saved.get(key) != new.get(key)]
