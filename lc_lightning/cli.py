"""``lc-train``: the LightningCLI of lc-lightning (subcommands fit, validate, test)."""

import importlib
import os
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

from jsonargparse import Namespace
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lc_lightning.callbacks import RecordRunStatus
from lc_lightning.checkpoint import LOAD_ERRORS, unreadable
from lc_lightning.data import ImageDataModule
from lc_lightning.errors import InvalidArgumentError, UserInputError
from lc_lightning.module import ImageClassifier
from lc_lightning.run_status import RunStatus, newest_checkpoint, write_status

# Each DataModule attribute is linked into the ImageClassifier argument of the same name.
DATA_TO_MODEL_LINKS = ("num_classes", "in_channels", "mean", "std")


class LCTrainCLI(LightningCLI):
    """LightningCLI with the data->model links and the always-on callbacks.

    ``--checkpoint.*`` configures a ModelCheckpoint (``save_last`` on) and ``--lr_monitor.*``
    a LearningRateMonitor (per step); both are always present, whatever
    ``trainer.callbacks`` lists. A fit also keeps the run directory's ``status.json``
    (RecordRunStatus), including a failure to build the model, data or trainer.
    """

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the hyperparameters of --ckpt_path before the trainer loads it; a
        # file torch.load cannot read gets the same message as from AtomicCheckpointIO.
        try:
            super()._parse_ckpt_path()
        except LOAD_ERRORS as error:
            raise unreadable(self.config[self.config.subcommand].ckpt_path, error) from error

    def before_instantiate_classes(self) -> None:
        if self.subcommand is None:
            return
        trainer = self.config[self.subcommand].trainer
        take_layout_from_slurm(trainer)
        if self.subcommand == "fit":
            pin_run_directory(trainer)
            config = self.config.fit
            if config.ckpt_path is None and trainer.default_root_dir is not None:
                config.ckpt_path = checkpoint_to_resume(Path(trainer.default_root_dir))

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as error:
            # jsonargparse wraps what a DataModule's __init__ raises in a ValueError about its Union type
            cause = _user_input_cause(error)
            reported = cause or error
            # recorded where the run directory exists (a sweep's run, a resumed run); a mistyped new
            # run leaves no directory behind
            root_dir = self.config.get("fit.trainer.default_root_dir") if self.subcommand == "fit" else None
            if root_dir is not None and Path(root_dir).is_dir() and rank_zero_only.rank == 0:
                write_status(Path(root_dir), RunStatus("failed", error=f"{type(reported).__name__}: {reported}"))
            if cause is not None:
                raise cause from None
            raise

    def fit(self, model, ckpt_path=None, **kwargs) -> None:
        """``trainer.fit`` with the run's status recorded in its run directory (with the
        TensorBoardLogger, whose directory pin_run_directory made the trainer's root; other
        loggers have no run directory of lc-train's); ``--ckpt_path last`` resumes from the
        newest of the run's last and requeue checkpoints (:func:`newest_checkpoint`)."""
        if isinstance(self.trainer.logger, TensorBoardLogger):
            self.trainer.callbacks.append(RecordRunStatus())
        if ckpt_path == "last":
            checkpoint_dir = self.config.fit.checkpoint.dirpath
            run_dir = Path(self.trainer.default_root_dir)
            ckpt_path = newest_checkpoint(run_dir, Path(checkpoint_dir) if checkpoint_dir else None) or "last"
        self.trainer.fit(model, ckpt_path=ckpt_path, **kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in DATA_TO_MODEL_LINKS:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


# The paper's recipe trains 75 epochs; ImageClassifier's defaults hold the rest of it.
# Checkpoints are written atomically and a bad --ckpt_path names the file.
TRAINER_DEFAULTS = {
    "max_epochs": 75,
    "plugins": {"class_path": "lc_lightning.checkpoint.AtomicCheckpointIO"},
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "lc-train"},
    },
}


def take_layout_from_slurm(trainer) -> None:
    """Under srun, take ``devices`` and ``num_nodes`` of the trainer config from SLURM's task layout.

    lc-train runs one process per device: each SLURM task is one process, so ``devices`` must be
    the tasks per node and ``num_nodes`` the job's nodes. ``devices`` "auto" or -1 and
    ``num_nodes`` 1 (the defaults) become SLURM's values; other values that disagree with SLURM
    raise InvalidArgumentError at once, in every task, rather than failing or hanging later.
    Outside srun (``SLURMEnvironment.detect()`` false) nothing changes.
    """
    if not SLURMEnvironment.detect():
        return
    tasks_per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "1")
    nodes = os.environ.get("SLURM_NNODES", "1")
    if not (tasks_per_node.isdigit() and nodes.isdigit()):
        return  # a heterogeneous layout such as "2(x3)": left to Lightning's own checks
    tasks_per_node, nodes = int(tasks_per_node), int(nodes)
    if trainer.devices in ("auto", -1, "-1"):
        trainer.devices = tasks_per_node
    elif str(trainer.devices) != str(tasks_per_node):
        raise InvalidArgumentError(
            f"SLURM runs {tasks_per_node} task(s) per node (--ntasks-per-node={tasks_per_node}) but "
            f"--trainer.devices={trainer.devices}; lc-train runs one process per device, so set "
            f"--trainer.devices={tasks_per_node} or sbatch/srun --ntasks-per-node={trainer.devices}"
        )
    if trainer.num_nodes == 1:
        trainer.num_nodes = nodes
    elif trainer.num_nodes != nodes:
        raise InvalidArgumentError(
            f"SLURM runs the job on {nodes} node(s) (--nodes={nodes}) but --trainer.num_nodes="
            f"{trainer.num_nodes}; set --trainer.num_nodes={nodes} or sbatch/srun --nodes={trainer.num_nodes}"
        )


def pin_run_directory(trainer) -> None:
    """Fix the directory of a training run before anything is written to it.

    With the TensorBoardLogger, a run's directory is ``<save_dir>/<name>/<version>``; it holds
    the TensorBoard events, ``config.yaml`` (the run's whole config, which LightningCLI writes
    there), ``checkpoints/`` and the checkpoints Lightning saves when SLURM asks for a requeue.
    An unset logger version becomes ``slurm-<job id>`` under srun (``slurm-<job>_<task>`` in an
    array), which a requeued job finds again, and otherwise the next free ``version_<n>``; it
    is written into the config, so ``--config <run dir>/config.yaml --ckpt_path last`` resumes
    in the same directory. An unset ``default_root_dir`` becomes the run directory, so
    Lightning's requeue checkpoints (``hpc_ckpt_<n>.ckpt``) belong to this run alone. Other
    loggers leave the config as it is.
    """
    logger = trainer.logger
    if not (isinstance(logger, Namespace) and _is_tensorboard_logger(logger.get("class_path"))):
        return
    args = logger.init_args
    root = Path(args.save_dir) / (args.name or "")
    if args.version is None:
        args.version = _slurm_run_version() or _next_version(root)
    if trainer.default_root_dir is None:
        version = args.version if isinstance(args.version, str) else f"version_{args.version}"
        trainer.default_root_dir = str(root / version)


def checkpoint_to_resume(run_dir: Path) -> str | None:
    """What a fit without ``--ckpt_path`` into ``run_dir`` resumes from, so that no run is overwritten.

    None where ``run_dir`` holds no checkpoint yet (a new run), or where Lightning resumes by
    itself (under srun with a requeue checkpoint ``hpc_ckpt_<n>.ckpt`` there). "last" for a
    job that SLURM restarted (requeued or preempted, ``SLURM_RESTART_COUNT`` > 0) without a
    requeue checkpoint. Otherwise the directory belongs to an earlier run and
    InvalidArgumentError says how to resume it or start anew.
    """
    if not any((run_dir / "checkpoints").glob("*.ckpt")):
        return None
    if SLURMEnvironment.detect() and any(run_dir.glob("hpc_ckpt_*.ckpt")):
        return None
    if int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0:
        return "last"
    raise InvalidArgumentError(
        f"{run_dir} already holds the checkpoints of a run. Resume it with --ckpt_path last, or start a new "
        f"run in a new directory with --trainer.logger.init_args.version=null --trainer.default_root_dir=null"
    )


def _user_input_cause(error: BaseException) -> UserInputError | None:
    """The UserInputError that ``error`` is or was raised from, if any."""
    while error is not None:
        if isinstance(error, UserInputError):
            return error
        error = error.__cause__ or error.__context__
    return None


def _is_tensorboard_logger(class_path: str | None) -> bool:
    module, _, name = (class_path or "").rpartition(".")
    try:
        return issubclass(getattr(importlib.import_module(module), name), TensorBoardLogger)
    except (ImportError, AttributeError, ValueError, TypeError):
        return False


def _slurm_run_version() -> str | None:
    """``slurm-<job id>`` (``slurm-<array job id>_<task id>``) under srun, else None; a job's
    second and later job steps (several srun calls in one job) add ``.<step id>``. A requeued
    job numbers its steps from 0 again, so each finds its directory again."""
    if not SLURMEnvironment.detect():
        return None
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        version = f"slurm-{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    else:
        version = f"slurm-{os.environ['SLURM_JOB_ID']}"
    step = os.environ.get("SLURM_STEP_ID", "0")
    return version if step == "0" else f"{version}.{step}"


def _next_version(root: Path) -> int:
    """One more than the largest ``version_<n>`` folder in ``root`` (0 when there is none)."""
    numbers = [int(d.name[8:]) for d in root.glob("version_*") if d.is_dir() and d.name[8:].isdigit()]
    return max(numbers, default=-1) + 1


CLI_ARGUMENTS = {
    "model_class": ImageClassifier,
    "datamodule_class": ImageDataModule,
    "subclass_mode_data": True,
    "auto_configure_optimizers": False,
    "seed_everything_default": 0,
    "trainer_defaults": TRAINER_DEFAULTS,
    "save_config_kwargs": {"overwrite": True},
}


def build_cli(args: list[str] | None = None, run: bool = True) -> LCTrainCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), run the subcommand unless ``run`` is false,
    and return the CLI with its ``trainer``, ``model`` and ``datamodule``."""
    return LCTrainCLI(**CLI_ARGUMENTS, args=args, run=run)


class FitConfigParser(LCTrainCLI):
    """The parser of ``lc-train fit``, built once, for checking many runs' configs quickly."""

    def __init__(self) -> None:
        super().__init__(**CLI_ARGUMENTS, args=[], run=False, parser_kwargs={"exit_on_error": False})

    def fit_config(self, args: list[str]) -> str:
        """The complete config that ``lc-train fit <args>`` would run with and save as the run's
        ``config.yaml`` (YAML, defaults filled in, nested config files inlined), built without
        instantiating anything (~0.05 s). A config ``lc-train`` would reject raises
        InvalidArgumentError with the parser's message."""
        try:
            config = self.parser.parse_args(args)
        except ArgumentError as error:
            raise InvalidArgumentError(str(error)) from None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # skip_none, as Lightning's SaveConfigCallback
            return self.parser.dump(config, skip_none=False)

    # LightningCLI's construction steps beyond building the parser: none of them here.
    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        self.config = Namespace()

    def _set_seed(self) -> None:
        pass

    def before_instantiate_classes(self) -> None:
        pass

    def instantiate_classes(self) -> None:
        pass


def main(args: list[str] | None = None) -> None:
    """Entry point of ``lc-train``.

    Errors in the user's input (UserInputError) end the process with their message on
    stderr and exit status 2, without a traceback.
    """
    try:
        build_cli(args)
    except UserInputError as error:
        print(f"lc-train: error: {_message(error)}", file=sys.stderr)
        raise SystemExit(2) from None


def _message(error: UserInputError) -> str:
    """The error's message. An error raised in a DataLoader worker process comes back with the
    worker's traceback in its message; its last line, "<class>: <message>", is what counts."""
    text = str(error)
    if "Original Traceback" in text:
        return text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


if __name__ == "__main__":
    main()
