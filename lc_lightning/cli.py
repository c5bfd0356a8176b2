"""``lc-train``: the LightningCLI of lc-lightning (subcommands fit, validate, test)."""

import errno
import importlib
import os
import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

import torch
import yaml
from jsonargparse import Namespace
from lightning import Trainer
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.callbacks import ProgressBar as ProgressBarBase
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only

from lc_lightning.argument_errors import (
    check_config_files,
    checkpoint_directory_advice,
    concerns_the_user_s_input,
    explain_parse_error,
    option_value,
)
from lc_lightning.callbacks import ProgressBar, RecordRun, RequeueOnSignal, SummarizeFit
from lc_lightning.checkpoint import LOAD_ERRORS, unreadable
from lc_lightning.cli_help import short_help
from lc_lightning.data import ImageDataModule
from lc_lightning.errors import CheckpointError, InvalidArgumentError, MachineFaultError, UserInputError
from lc_lightning.faults import machine_fault
from lc_lightning.held_run import HeldRun, fault_line
from lc_lightning.module import ImageClassifier
from lc_lightning.run_directory import EVALUATION_STAGES, RunDirectory, shown

# Each DataModule attribute is linked into the ImageClassifier argument of the same name.
DATA_TO_MODEL_LINKS = ("num_classes", "in_channels", "mean", "std")
# --ckpt_path values that name no file
CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
# The directory the global-zero process fixed, for the processes Lightning's DDP launcher starts after it
RUN_DIRECTORY = "LC_LIGHTNING_RUN_DIRECTORY"
# Our DataModules save where the training loader stands in its epoch (ImageDataModule.state_dict),
# so a checkpoint taken in the middle of an epoch resumes exactly; Lightning cannot see that.
warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")


class LCTrainCLI(LightningCLI):
    """LightningCLI with the data->model links, the always-on callbacks and the run directory.

    ``--checkpoint.*`` configures a ModelCheckpoint (``save_last`` on) and ``--lr_monitor.*`` a
    LearningRateMonitor (per step); both are always present, whatever ``trainer.callbacks`` lists.
    The progress bar is lc_lightning.callbacks.ProgressBar unless ``trainer.callbacks`` names one.

    With the TensorBoardLogger (the default), every fit has a run directory
    (lc_lightning.run_directory), fixed before anything is built: the config, its status and
    checkpoints live there, and ``--ckpt_path last`` resumes from its newest checkpoint. A
    ``validate`` or ``test`` of a checkpoint of a run starts from that run's own config (any
    ``--config`` and options apply on top) and writes into ``<run>/<stage>_<n>/``, never into the
    run's own record. Under SLURM, SIGUSR1 saves the run at a step boundary and requeues it
    (RequeueOnSignal).
    """

    run: RunDirectory | None = None
    """The directory of this fit, or of this evaluation; None with another logger."""
    _checkpoint: dict | None = None  # the --ckpt_path checkpoint, memory-mapped, until it is checked
    _given_model: Namespace | None = None  # the model config given, before the --ckpt_path checkpoint's replaced it
    _held: HeldRun | None = None  # the run this process (the global-zero one) holds, while it does
    _trainer_started = False  # whether trainer.fit/validate/test was called (RecordRun keeps the status since)

    def __init__(self, *args, **kwargs) -> None:
        """LightningCLI's; then, whatever happened, the run is let go (HeldRun). A start that failed before
        its first training step leaves nothing it created, and a failed start of an existing run records
        why unless the run finished. A full disk or an unwritable directory (lc_lightning.faults) ends
        in MachineFaultError, one line saying what happened, where, and the command to run once it is
        fixed."""
        try:
            super().__init__(*args, **kwargs)
        except BaseException as error:
            subcommand = getattr(self, "subcommand", None)  # None where parsing failed
            if self._held is not None:
                trained = subcommand == "fit" and getattr(getattr(self, "trainer", None), "global_step", 0) > 0
                self._held.start_failed(_user_input_cause(error) or error, trained, recorded=self._trainer_started)
            fault = machine_fault(error)
            if fault is not None:
                made = self._held is not None and self._held.created is not None
                resumed = subcommand is not None and self.config[subcommand].get("ckpt_path") is not None and not made
                raise MachineFaultError(fault_line(fault, self.run, subcommand == "fit", resumed)) from None
            raise
        finally:
            if self._held is not None:
                self._held.let_go()

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        # a parse error raises ArgumentError, which parse_arguments turns into one line
        return super().init_parser(**{"exit_on_error": False, **kwargs})

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:
        """LightningCLI's subcommands less ``predict``: lc-train's models and data have no prediction."""
        return {name: skip for name, skip in super().subcommands().items() if name != "predict"}

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        with_run, the_run_s_config = None, "the config of the run whose checkpoint --ckpt_path names"
        parsed = args
        if args is None or isinstance(args, list):
            command_line = sys.argv[1:] if args is None else args
            ckpt_path = option_value(command_line, "--ckpt_path")
            if ckpt_path not in (None, *CHECKPOINT_KEYWORDS) and Path(ckpt_path).is_dir():
                read_checkpoint(Path(ckpt_path))  # says which file to give instead, before the parser asks for more
            check_config_files(command_line)
            command_line = with_runs_where_they_are(command_line)
            with_run = with_evaluated_run_config(command_line)
            if with_run is not None:
                try:
                    check_config_files(with_run)  # the user's own passed above: the run's config
                except InvalidArgumentError as error:
                    raise InvalidArgumentError(f"{error} ({the_run_s_config})") from None
            parsed = with_run or command_line
        try:
            with warnings.catch_warnings():
                # the command line itself, when lc-train put the run's config into it
                warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
                super().parse_arguments(parser, parsed)
        except ArgumentError as error:
            message = explain_parse_error(error, parser)
            if with_run is not None and not concerns_the_user_s_input(message, command_line):
                message += f"; check {RunDirectory.containing(Path(ckpt_path)).config_file}, {the_run_s_config}"
            raise InvalidArgumentError(message) from None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None and ckpt_path not in CHECKPOINT_KEYWORDS:
            self._checkpoint = read_checkpoint(Path(ckpt_path))
            self._given_model = self.config[subcommand].model.clone()  # before LightningCLI takes the checkpoint's

    def _report_replaced_options(self) -> None:
        """One line naming the model options given that LightningCLI replaced by the ``--ckpt_path``
        checkpoint's own (its hyperparameters), if any."""
        given, used = _leaves(self._given_model.as_dict()), _leaves(self.config[self.subcommand].model.as_dict())
        replaced = [
            f"--{key}={given[key]} (its {used[key]})" for key in given if key in used and used[key] != given[key]
        ]
        if replaced and rank_zero_only.rank == 0:
            checkpoint = self.config[self.subcommand].ckpt_path
            print(
                f"lc-train: checkpoint {checkpoint} keeps the model it was trained with, in place of "
                f"{', '.join(replaced)}",
                file=sys.stderr,
            )

    def before_instantiate_classes(self) -> None:
        """Fix the directory and, on the global-zero process, hold it; then check the process layout and
        the accelerator against this machine."""
        if self.subcommand is None:
            return
        if self._given_model is not None:
            self._report_replaced_options()
        config = self.config[self.subcommand]
        created = None
        if self.subcommand == "fit":
            self.run, created = pin_run_directory(config.trainer)
        elif self.subcommand in EVALUATION_STAGES:
            self.run, created = pin_evaluation_directory(config.trainer, self.subcommand, config.ckpt_path)
        if self.run is not None and global_rank() == 0:
            try:
                self._held = HeldRun(self.run, created, f"lc-train {self.subcommand}")
            except InvalidArgumentError:
                raise  # another process holds the run: its directory stays as it is
            except BaseException:
                if created is not None:  # the start leaves nothing it made
                    self.run.discard(created)
                raise
        take_layout_from_slurm(config.trainer)
        check_accelerator(config.trainer)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as error:
            # jsonargparse wraps what a DataModule's __init__ raises in a ValueError about its Union type
            cause = _user_input_cause(error)
            if cause is not None:
                raise cause from None
            raise

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer_config = (self.config_init[self.subcommand] if self.subcommand else self.config_init).trainer
        callbacks = trainer_config.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        showing_progress = trainer_config.get("enable_progress_bar") is not False
        if showing_progress and not any(isinstance(callback, ProgressBarBase) for callback in callbacks):
            kwargs["callbacks"] = [*callbacks, ProgressBar()]  # a progress bar the config names is kept
        if SLURMEnvironment.detect():
            # RequeueOnSignal replaces Lightning's requeue, which saves wherever SIGUSR1 lands
            plugins = trainer_config.get("plugins") or []
            plugins = plugins if isinstance(plugins, list) else [plugins]
            kwargs["plugins"] = [*plugins, SLURMEnvironment(auto_requeue=False)]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """Decide what the fit starts from, create a new run's directory with its config and
        attach the run's callbacks."""
        config = self.config_init.fit
        if self.run is None:
            self._check_checkpoint_fits()
            return
        status = self.run.status()
        if status is not None and status.world_size not in (None, self.trainer.world_size):
            raise InvalidArgumentError(
                f"{self.run.path} trained with {status.world_size} processes, this fit has {self.trainer.world_size}: "
                "resume it with the same --trainer.devices and --trainer.num_nodes (under SLURM: --nodes and "
                "--ntasks-per-node), so that it sees the same batches"
            )
        restarted = int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0
        requested = config.ckpt_path
        config.ckpt_path = self.run.checkpoint_to_resume(requested, restarted_by_slurm=restarted)
        if config.ckpt_path is not None and self._checkpoint is None:  # the checkpoint "last" stands for
            self._checkpoint = read_checkpoint(Path(config.ckpt_path))
        self._check_checkpoint_fits()
        if self.trainer.is_global_zero:
            if requested == "last" and config.ckpt_path is None:
                self._set_aside_earlier_start()
            if not self.run.exists():
                self.run.create(self._config_text())
        self.trainer.callbacks += [
            RecordRun(self.run),
            SummarizeFit(self.run, new=self._held is not None and self._held.created is not None),
        ]
        if SLURMEnvironment.detect():
            self.trainer.callbacks.append(RequeueOnSignal(str(self.run.requeue_checkpoint)))
        self._trainer_started = True

    def _set_aside_earlier_start(self) -> None:
        """Where ``--ckpt_path last`` finds no checkpoint, keep an earlier start's files aside and say so."""
        attempt = self.run.set_aside_earlier_start()
        if attempt is not None:
            print(
                f"lc-train: {shown(self.run.path)} has no checkpoint to resume from: training it from the start; "
                f"the earlier start's files are kept in {shown(attempt)}"
            )

    def before_validate(self) -> None:
        self._start_evaluation()

    def before_test(self) -> None:
        self._start_evaluation()

    def after_validate(self) -> None:
        self._say_where_the_evaluation_is()

    def after_test(self) -> None:
        self._say_where_the_evaluation_is()

    def _say_where_the_evaluation_is(self) -> None:
        if self.run is not None and self.trainer.is_global_zero:
            print(f"lc-train: {self.subcommand} results in {self.run.path} (status.json, TensorBoard events)")

    def _start_evaluation(self) -> None:
        """Check the checkpoint fits the model, then write the evaluation's config."""
        # the always-on ModelCheckpoint saves nothing in an evaluation; its restored state does not matter
        warnings.filterwarnings("ignore", "The dirpath has changed from")
        checkpoint = self._checkpoint or {}
        self._check_checkpoint_fits()
        if self.run is not None:
            if self.trainer.is_global_zero:
                self.run.create(self._config_text())
            reached = (checkpoint.get("epoch"), checkpoint.get("global_step"))
            self.trainer.callbacks.append(RecordRun(self.run, reached=reached))
        self._trainer_started = True

    def _config_text(self) -> str:
        """The subcommand's complete config as YAML, as its directory's config.yaml records it."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # skip_none, as Lightning's SaveConfigCallback
            dumped = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        return yaml.safe_dump(dumped[self.subcommand], sort_keys=False, allow_unicode=True)

    def _check_checkpoint_fits(self) -> None:
        """InvalidArgumentError where the --ckpt_path checkpoint does not fit the model (see checkpoint_mismatch)."""
        checkpoint, self._checkpoint = self._checkpoint, None
        ckpt_path = self.config_init[self.subcommand].ckpt_path
        if checkpoint is None:
            return
        mismatch = checkpoint_mismatch(self.model.state_dict(), checkpoint.get("state_dict", {}))
        if not mismatch:
            return
        trained = RunDirectory.containing(Path(ckpt_path))
        if trained is None:
            advice = "Give the config it was trained with"
        elif self.subcommand == "fit":
            advice = f"It was trained with {trained.config_file}: resume from that config, without model options"
        else:
            advice = (
                f"It was trained with {trained.config_file}: {self.subcommand} it with --ckpt_path alone, which "
                "starts from that config, adding only the options that change the evaluation"
            )
        raise InvalidArgumentError(
            f"checkpoint {ckpt_path} does not fit the model this config builds ({mismatch}). {advice}"
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in DATA_TO_MODEL_LINKS:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


# The paper's recipe trains 75 epochs; ImageClassifier's defaults hold the rest of it.
# Checkpoints are written atomically and a bad --ckpt_path names the file. Scalars (the learning
# rate among them) are logged every 10 steps, so that short runs have curves too; TensorBoard shows
# no placeholder hp_metric.
TRAINER_DEFAULTS = {
    "max_epochs": 75,
    "log_every_n_steps": 10,
    "plugins": {"class_path": "lc_lightning.checkpoint.AtomicCheckpointIO"},
    "logger": {
        "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
        "init_args": {"save_dir": "logs", "name": "lc-train", "default_hp_metric": False},
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


def pin_run_directory(trainer) -> tuple[RunDirectory | None, Path | None]:
    """The directory of a fit (a RunDirectory) fixed in the trainer config before anything is built, and
    the topmost folder this process created for it (None where it created none).

    With the TensorBoardLogger a run lives in ``<save_dir>/<name>/<version>``. ``save_dir`` becomes
    absolute. An unset version becomes the one RunDirectory.claim_new_run creates on the global-zero
    process (``global_rank``; named after the SLURM job under srun, else the next free ``version_<n>``),
    a version given is made where it is missing; the other processes of the run take the same one. An
    unset ``default_root_dir`` becomes the run directory. Other loggers have no run directory: None.
    """
    args = _tensorboard_args(trainer)
    if args is None:
        return None, None
    args.save_dir = str(Path(args.save_dir).resolve())
    root = Path(args.save_dir) / (args.name or "")
    created = None
    under_slurm = SLURMEnvironment.detect()
    if args.version is not None:
        run = RunDirectory.of_version(root, args.version)
        if global_rank() == 0:
            run, created = run.make()
    elif global_rank() == 0:
        run, created = RunDirectory.claim_new_run(root, under_slurm=under_slurm)
        os.environ[RUN_DIRECTORY] = str(run.path)  # for the processes Lightning's DDP launcher starts
    elif under_slurm:
        run = RunDirectory.of_slurm_job(root)
    else:
        run = RunDirectory(_directory_of_rank_zero())
    if args.version is None:
        args.version = run.path.name
    if trainer.default_root_dir is None:
        trainer.default_root_dir = str(run.path)
    return run, created


def pin_evaluation_directory(trainer, stage: str, ckpt_path: str | None) -> tuple[RunDirectory | None, Path | None]:
    """The directory of a validate or test (``stage``), fixed in the trainer config, and the topmost
    folder this process created for it: a new ``<stage>_<n>`` in the run whose checkpoint
    ``ckpt_path`` is, or under the logger's ``<save_dir>/<name>`` for a checkpoint outside any run,
    created on the global-zero process. The TensorBoardLogger and ``default_root_dir`` are pointed at
    it. None with another logger."""
    args = _tensorboard_args(trainer)
    if args is None:
        return None, None
    run = RunDirectory.containing(Path(ckpt_path)) if ckpt_path not in (None, *CHECKPOINT_KEYWORDS) else None
    evaluated = run or RunDirectory(Path(args.save_dir).resolve() / (args.name or ""))
    created = None
    if global_rank() == 0:
        evaluation, created = evaluated.claim_evaluation(stage)
        os.environ[RUN_DIRECTORY] = str(evaluation.path)
    elif not SLURMEnvironment.detect():
        evaluation = RunDirectory(_directory_of_rank_zero())
    else:  # the other tasks of an srun write nothing: any name will do
        evaluation = RunDirectory(evaluated.path / f"{stage}_rank{global_rank()}")
    args.save_dir, args.name, args.version = str(evaluation.path.parent), "", evaluation.path.name
    trainer.default_root_dir = str(evaluation.path)
    return evaluation, created


def global_rank() -> int:
    """This process's rank in its run before the Trainer exists: its SLURM task's under srun, else what
    Lightning reads from the environment (0 for the process a user started)."""
    return int(os.environ["SLURM_PROCID"]) if SLURMEnvironment.detect() else rank_zero_only.rank


def _directory_of_rank_zero() -> Path:
    """The directory the global-zero process fixed, for a process Lightning's DDP launcher started."""
    if RUN_DIRECTORY not in os.environ:
        raise InvalidArgumentError(
            f"started as rank {global_rank()} by a launcher other than lc-train's own (--trainer.devices) or srun, "
            "lc-train cannot tell its run's directory: name it with --trainer.logger.init_args.version"
        )
    return Path(os.environ[RUN_DIRECTORY])


def check_accelerator(trainer) -> None:
    """InvalidArgumentError where the trainer config asks for a GPU and torch finds none on this machine."""
    accelerator = trainer.accelerator
    if not (isinstance(accelerator, str) and accelerator in ("gpu", "cuda")):
        return
    if torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available()):
        return
    raise InvalidArgumentError(
        f"--trainer.accelerator={accelerator}: torch {torch.__version__} finds no GPU on this machine; train on "
        "the CPU with --trainer.accelerator=cpu (or --config configs/trainer/cpu.yaml in place of gpu.yaml/ddp.yaml)"
    )


def with_evaluated_run_config(args: list[str]) -> list[str] | None:
    """``args`` of ``lc-train validate`` or ``test`` with the config of the run whose checkpoint
    ``--ckpt_path`` names put first, so that the user's own configs and options apply on top of it;
    None for other arguments (another subcommand, no --ckpt_path, a checkpoint outside any run).
    The run's process layout is not taken over: the evaluation runs on this machine's devices (or
    the SLURM task layout), as any --trainer.devices and --trainer.num_nodes given say."""
    stages = [index for index, arg in enumerate(args) if arg in EVALUATION_STAGES]
    if not stages:
        return None
    first = stages[0]
    ckpt_path = option_value(args[first + 1 :], "--ckpt_path")
    if ckpt_path is None or ckpt_path in CHECKPOINT_KEYWORDS:
        return None
    run = RunDirectory.containing(Path(ckpt_path))
    if run is None:
        return None
    run_config = ["--config", str(run.config_file), "--trainer.devices=auto", "--trainer.num_nodes=1"]
    return [*args[: first + 1], *run_config, *args[first + 1 :]]


def with_runs_where_they_are(args: list[str]) -> list[str]:
    """``args`` with, right after each ``--config`` that is a run's config.yaml, the options that place a
    fit in that run's directory where it lies now (its logger's ``save_dir``, ``name`` and
    ``default_root_dir``), so that a run moved or copied elsewhere resumes in its own directory; options
    given after it still apply."""
    placed = []
    for index, arg in enumerate(args):
        placed.append(arg)
        config = arg.partition("=")[2] if arg.startswith("--config=") else None
        if arg == "--config" and index + 1 < len(args):
            continue
        if index > 0 and args[index - 1] == "--config":
            config = arg
        run = RunDirectory.of_config(Path(config)) if config else None
        if run is not None:
            placed += run.placement_options()
    return placed


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``, memory-mapped (its tensors are read only when used);
    CheckpointError naming the file where it is missing, truncated or corrupt, or saying which
    file to give where ``path`` is a directory (a run's, its checkpoints/ folder...)."""
    if path.is_dir():
        raise CheckpointError(checkpoint_directory_advice(path))
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path.resolve()}")
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except LOAD_ERRORS as error:
        raise unreadable(path, error) from error
    except OSError as error:
        if error.errno != errno.EINVAL:  # mmap refuses a file cut short
            raise
        raise unreadable(path, error) from error


def checkpoint_mismatch(model: dict, checkpoint: dict) -> str | None:
    """How the state dict of a ``checkpoint`` does not fit the ``model``'s (parameters missing
    from one of them, or of another shape), a few of them named; None where it fits."""
    missing = [name for name in model if name not in checkpoint]
    unexpected = [name for name in checkpoint if name not in model]
    resized = [
        f"{name}: {list(checkpoint[name].shape)} in the checkpoint, {list(model[name].shape)} here"
        for name in model
        if name in checkpoint
        and isinstance(model[name], torch.Tensor)  # not an extra state (a dict)
        and checkpoint[name].shape != model[name].shape
    ]
    problems = [*resized, *(f"{name} missing in the checkpoint" for name in missing)]
    problems += [f"{name} not in this model" for name in unexpected]
    if not problems:
        return None
    more = f"; {len(problems) - 2} more" if len(problems) > 2 else ""
    return "; ".join(problems[:2]) + more


def _tensorboard_args(trainer) -> Namespace | None:
    """The init_args of the trainer config's logger if it is a TensorBoardLogger, else None."""
    logger = trainer.logger
    if isinstance(logger, Namespace) and _is_tensorboard_logger(logger.get("class_path")):
        return logger.init_args
    return None


def _leaves(config: dict, prefix: str = "model.") -> dict[str, object]:
    """The values of a nested config by dotted key."""
    leaves = {}
    for key, value in config.items():
        if isinstance(value, dict):
            leaves.update(_leaves(value, f"{prefix}{key}."))
        else:
            leaves[f"{prefix}{key}"] = value
    return leaves


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


CLI_ARGUMENTS = {
    "model_class": ImageClassifier,
    "datamodule_class": ImageDataModule,
    "subclass_mode_data": True,
    "auto_configure_optimizers": False,
    "seed_everything_default": 0,
    "trainer_defaults": TRAINER_DEFAULTS,
    "save_config_callback": None,  # the run directory writes config.yaml, once
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
        check_config_files(args)
        try:
            config = self.parser.parse_args(args)
        except ArgumentError as error:
            raise InvalidArgumentError(explain_parse_error(error, self.parser)) from None
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

    ``lc-train <subcommand> --help`` prints the short help (lc_lightning.cli_help),
    ``--help-all`` LightningCLI's complete one. Errors in the user's input (UserInputError)
    end the process with their message on stderr and exit status 2, a full disk or an unwritable
    directory (MachineFaultError) with exit status 1, without a traceback.
    """
    command_line = sys.argv[1:] if args is None else list(args)
    if command_line[:1] and command_line[0] in ("fit", *EVALUATION_STAGES):
        if "--help" in command_line or "-h" in command_line:
            print(short_help(command_line[0], TRAINER_DEFAULTS), end="")
            return
        command_line = ["--help" if arg == "--help-all" else arg for arg in command_line]
    try:
        build_cli(command_line)
    except UserInputError as error:
        print(f"lc-train: error: {_message(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except MachineFaultError as error:
        print(f"lc-train: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


def _message(error: UserInputError) -> str:
    """The error's message. An error raised in a DataLoader worker process comes back with the
    worker's traceback in its message; its last line, "<class>: <message>", is what counts."""
    text = str(error)
    if "Original Traceback" in text:
        return text.rstrip().splitlines()[-1].split(": ", 1)[-1]
    return text


if __name__ == "__main__":
    main()
