"""A sweep directory: ``sweep.yaml`` (the grid), ``runs.txt`` (run names; line i is SLURM array
task i) and one run directory per run, ``<sweep dir>/<run name>/``, holding the run's complete
``config.yaml``, its TensorBoard events, checkpoints and ``status.json``."""

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_status import RunStatus, newest_checkpoint, read_status
from lc_lightning.sweep.grid import Run, Sweep

SWEEP_FILE = "sweep.yaml"
RUNS_FILE = "runs.txt"
CONFIG_FILE = "config.yaml"


@dataclass(frozen=True)
class SweepDirectory:
    """The directory ``path`` of ``sweep`` and its ``runs``."""

    path: Path
    sweep: Sweep
    runs: list[Run]

    def run_dir(self, run: Run) -> Path:
        return self.path / run.name

    def status(self, run: Run) -> RunStatus | None:
        """The run's status.json, None where it never started."""
        return read_status(self.run_dir(run))

    def has_checkpoint(self, run: Run) -> bool:
        """Whether ``run`` has a checkpoint to resume from."""
        return newest_checkpoint(self.run_dir(run)) is not None

    def train_arguments(self, run: Run) -> list[str]:
        """The arguments of ``lc-train fit`` that train (or resume) ``run`` from its config.yaml."""
        return ["fit", "--config", str(self.run_dir(run) / CONFIG_FILE), "--ckpt_path", "last"]


def open_sweep_directory(path: Path, sweep: Sweep, write: bool = True) -> SweepDirectory:
    """Create or reopen the directory of ``sweep`` at ``path`` and write the config.yaml of every
    run that has none yet (a run's config is fixed when first written; resuming uses it as saved).

    Every run's config is checked as ``lc-train fit`` would check it, before anything is written:
    a bad one raises InvalidArgumentError naming the run. A directory that holds a different
    sweep (other configs or axes) raises InvalidArgumentError. ``write`` false checks and writes
    nothing.
    """
    from lc_lightning.cli import FitConfigParser  # here, so that lc-report reads sweeps without importing Lightning

    path = path.resolve()
    runs = sweep.runs()
    recorded = path / SWEEP_FILE
    if recorded.is_file():
        previous = yaml.safe_load(recorded.read_text())
        if _definition(previous) != _definition(sweep.record()):
            raise InvalidArgumentError(
                f"{path} holds another sweep (its {SWEEP_FILE} has other configs or axes); "
                "give this one its own directory with --dir"
            )
    configs, parser = {}, None
    for run in runs:
        if not (path / run.name / CONFIG_FILE).is_file():
            parser = parser or FitConfigParser()
            try:
                configs[run.name] = parser.fit_config(_config_arguments(sweep, run, path))
            except InvalidArgumentError as error:
                raise InvalidArgumentError(f"run {run.name}: lc-train rejects its config: {error}") from None
    if not write:
        return SweepDirectory(path, sweep, runs)
    path.mkdir(parents=True, exist_ok=True)
    recorded.write_text(yaml.safe_dump({**sweep.record(), "runs": [run.name for run in runs]}, sort_keys=False))
    (path / RUNS_FILE).write_text("".join(f"{run.name}\n" for run in runs))
    for name, config in configs.items():
        (path / name).mkdir(exist_ok=True)
        (path / name / CONFIG_FILE).write_text(config)
    return SweepDirectory(path, sweep, runs)


def read_sweep_directory(path: Path) -> SweepDirectory:
    """The sweep that lc-sweep recorded in ``path``; InvalidArgumentError where there is none."""
    recorded = Path(path).resolve() / SWEEP_FILE
    if not recorded.is_file():
        raise InvalidArgumentError(f"{path} is not a sweep directory: it has no {SWEEP_FILE} (lc-sweep writes it)")
    record = yaml.safe_load(recorded.read_text())
    report = record.get("report") or {}
    sweep = Sweep(tuple(record["configs"]), tuple(record["grid"]), report.get("x"), report.get("labels") or {})
    return SweepDirectory(recorded.parent, sweep, sweep.runs())


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
    """What makes two sweeps the same: their configs and axes (not how they are reported)."""
    return json.dumps(record["configs"]), json.dumps(record["grid"], sort_keys=True)
