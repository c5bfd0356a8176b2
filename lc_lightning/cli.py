"""``lc-train``: the LightningCLI of lc-lightning (subcommands fit, validate, test)."""

import sys
import warnings
from argparse import ArgumentError
from pathlib import Path

from lightning import Trainer
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.callbacks import ProgressBar as ProgressBarBase
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lc_lightning import distributed
from lc_lightning.callbacks import ProgressBar, RecordRun, RequeueOnSignal, SummarizeFit
from lc_lightning.checkpoint import CHECKPOINT_KEYWORDS, check_fits, read_checkpoint, replaced_model_options
from lc_lightning.cli_help import short_help
from lc_lightning.data import ImageDataModule
from lc_lightning.errors import InvalidArgumentError, MachineFaultError, UserInputError, one_line, user_input_cause
from lc_lightning.held_run import HeldRun, end_failed_command
from lc_lightning.module import ImageClassifier
from lc_lightning.run_arguments import command_line_to_parse, config_text, parse_error_line, pin_directory
from lc_lightning.run_directory import EVALUATION_STAGES, RunDirectory

# Each DataModule attribute is linked into the ImageClassifier argument of the same name.
DATA_TO_MODEL_LINKS = ("num_classes", "in_channels", "mean", "std")
# Our DataModules save where the training loader stands in its epoch (ImageDataModule.state_dict),
# so a checkpoint taken in the middle of an epoch resumes exactly; Lightning cannot see that.
warnings.filterwarnings("ignore", "You're resuming from a checkpoint that ended before the epoch ended")


class LCTrainCLI(LightningCLI):
    """LightningCLI with the data->model links, the always-on callbacks and the run directory.

    ``--checkpoint.*`` configures a ModelCheckpoint (``save_last`` on) and ``--lr_monitor.*`` a
    LearningRateMonitor (per step), always present; lc_lightning.callbacks.ProgressBar is the progress
    bar unless ``trainer.callbacks`` names one. With the TensorBoardLogger (the default), every fit has a
    run directory (lc_lightning.run_directory) fixed before anything is built, which holds its config,
    status and checkpoints; ``--ckpt_path last`` resumes it. A ``validate`` or ``test`` of a run's
    checkpoint starts from that run's config and writes into ``<run>/<stage>_<n>/``, never into the run's
    own record. Under SLURM, SIGUSR1 saves the run at a step boundary and requeues it (RequeueOnSignal).
    """

    run: RunDirectory | None = None
    """The directory of this fit, or of this evaluation; None with another logger."""
    _checkpoint: dict | None = None  # the --ckpt_path checkpoint, memory-mapped, until it is checked
    _given_model = None  # the model config given, before the --ckpt_path checkpoint's replaced it
    _held: HeldRun | None = None  # the run this process (the global-zero one) holds, while it does
    _trainer_started = False  # whether trainer.fit/validate/test was called (RecordRun keeps the status since)

    def __init__(self, *args, **kwargs) -> None:
        try:
            super().__init__(*args, **kwargs)
        except BaseException as error:
            subcommand = getattr(self, "subcommand", None)  # None where parsing failed
            end_failed_command(
                error,
                self._held,
                self.run,
                fit=subcommand == "fit",
                trained=subcommand == "fit" and getattr(getattr(self, "trainer", None), "global_step", 0) > 0,
                recorded=self._trainer_started,
                ckpt_given=subcommand is not None and self.config[subcommand].get("ckpt_path") is not None,
            )
            raise
        finally:
            if self._held is not None:
                self._held.let_go()

    def init_parser(self, **kwargs) -> LightningArgumentParser:
        # a parse error raises ArgumentError, which parse_arguments turns into one line
        return super().init_parser(**{"exit_on_error": False, **kwargs})

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        for name in DATA_TO_MODEL_LINKS:
            parser.link_arguments(f"data.{name}", f"model.{name}", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults({"checkpoint.save_last": True})
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})

    @classmethod
    def subcommands(cls) -> dict[str, set[str]]:
        """LightningCLI's subcommands less ``predict``: lc-train's models and data have no prediction."""
        return {name: skip for name, skip in super().subcommands().items() if name != "predict"}

    def parse_arguments(self, parser: LightningArgumentParser, args) -> None:
        command_line = sys.argv[1:] if args is None else args
        evaluated = None
        if isinstance(command_line, list):
            args, evaluated = command_line_to_parse(command_line)
        try:
            with warnings.catch_warnings():
                # the command line itself, when lc-train put the run's config into it
                warnings.filterwarnings("ignore", "LightningCLI's args parameter is intended")
                super().parse_arguments(parser, args)
        except ArgumentError as error:
            raise InvalidArgumentError(parse_error_line(error, parser, command_line, evaluated)) from None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path is not None and ckpt_path not in CHECKPOINT_KEYWORDS:
            self._checkpoint = read_checkpoint(Path(ckpt_path))
            self._given_model = self.config[subcommand].model.clone()  # before LightningCLI takes the checkpoint's

    def before_instantiate_classes(self) -> None:
        """Say which model options the checkpoint's replaced; fix the directory and, on the global-zero
        process, hold it; then check the process layout and the accelerator against this machine."""
        if self.subcommand is None:
            return
        config = self.config[self.subcommand]
        replaced = self._given_model and replaced_model_options(self._given_model, config.model, config.ckpt_path)
        if replaced and distributed.global_rank() == 0:
            print(f"lc-train: {replaced}", file=sys.stderr)
        self.run, created = pin_directory(self.subcommand, config.trainer, config.ckpt_path)
        if self.run is not None and distributed.global_rank() == 0:
            self._held = HeldRun(self.run, created, f"lc-train {self.subcommand}")
        distributed.take_layout_from_slurm(config.trainer)
        distributed.check_accelerator(config.trainer)

    def instantiate_classes(self) -> None:
        try:
            super().instantiate_classes()
        except Exception as error:
            # jsonargparse wraps what a DataModule's __init__ raises in a ValueError about its Union type
            cause = user_input_cause(error)
            if cause is not None:
                raise cause from None
            raise

    def instantiate_trainer(self, **kwargs) -> Trainer:
        trainer_config = (self.config_init[self.subcommand] if self.subcommand else self.config_init).trainer
        callbacks = _as_list(trainer_config.get("callbacks"))
        if trainer_config.get("enable_progress_bar") is not False and not any(
            isinstance(callback, ProgressBarBase) for callback in callbacks
        ):
            kwargs["callbacks"] = [*callbacks, ProgressBar()]  # a progress bar the config names is kept
        if distributed.under_slurm():  # RequeueOnSignal replaces Lightning's requeue, which saves anywhere
            kwargs["plugins"] = [*_as_list(trainer_config.get("plugins")), SLURMEnvironment(auto_requeue=False)]
        return super().instantiate_trainer(**kwargs)

    def before_fit(self) -> None:
        """Decide what the fit starts from (RunDirectory.resume_point), check the checkpoint fits the model,
        start the run's record (HeldRun.begin_fit) and attach the run's callbacks."""
        config = self.config_init.fit
        if self.run is not None:
            requested, restarted = config.ckpt_path, distributed.restarted_by_slurm()
            config.ckpt_path = self.run.resume_point(requested, self.trainer.world_size, restarted)
            if config.ckpt_path is not None and self._checkpoint is None:  # the checkpoint "last" stands for
                self._checkpoint = read_checkpoint(Path(config.ckpt_path))
        checkpoint, self._checkpoint = self._checkpoint, None
        check_fits(self.model.state_dict(), checkpoint, config.ckpt_path, "fit")
        if self._held is not None:
            self._held.begin_fit(requested == "last" and config.ckpt_path is None, self._config_text)
        if self.run is not None:
            self.trainer.callbacks += [RecordRun(self.run), SummarizeFit(self.run, new=self._held_new_run)]
            if distributed.under_slurm():
                self.trainer.callbacks.append(RequeueOnSignal(str(self.run.requeue_checkpoint)))
        self._trainer_started = True

    def before_validate(self) -> None:
        """Check the checkpoint fits the model, then write the evaluation's config and record it."""
        # the always-on ModelCheckpoint saves nothing in an evaluation; its restored state does not matter
        warnings.filterwarnings("ignore", "The dirpath has changed from")
        checkpoint, self._checkpoint = self._checkpoint or {}, None
        check_fits(self.model.state_dict(), checkpoint, self.config_init[self.subcommand].ckpt_path, self.subcommand)
        if self._held is not None:
            self.run.create(self._config_text())
        if self.run is not None:
            reached = (checkpoint.get("epoch"), checkpoint.get("global_step"))
            self.trainer.callbacks.append(RecordRun(self.run, reached=reached))
        self._trainer_started = True

    before_test = before_validate

    def after_validate(self) -> None:
        if self.run is not None and self.trainer.is_global_zero:
            print(f"lc-train: {self.subcommand} results in {self.run.path} (status.json, TensorBoard events)")

    after_test = after_validate

    @property
    def _held_new_run(self) -> bool:
        return self._held is not None and self._held.created is not None

    def _config_text(self) -> str:
        return config_text(self.parser, self.config, self.subcommand)


def _as_list(value) -> list:
    return [] if value is None else value if isinstance(value, list) else [value]


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
        print(f"lc-train: error: {one_line(error)}", file=sys.stderr)
        raise SystemExit(2) from None
    except MachineFaultError as error:
        print(f"lc-train: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
