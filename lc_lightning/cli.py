"""``lc-train``: the LightningCLI of lc-lightning (subcommands fit, validate, test)."""

import sys

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from lc_lightning.checkpoint import LOAD_ERRORS, unreadable
from lc_lightning.data import ImageDataModule
from lc_lightning.errors import UserInputError
from lc_lightning.module import ImageClassifier

# Each DataModule attribute is linked into the ImageClassifier argument of the same name.
DATA_TO_MODEL_LINKS = ("num_classes", "in_channels", "mean", "std")


class LCTrainCLI(LightningCLI):
    """LightningCLI with the data->model links and the always-on callbacks.

    ``--checkpoint.*`` configures a ModelCheckpoint (``save_last`` on) and ``--lr_monitor.*``
    a LearningRateMonitor (per step); both are always present, whatever
    ``trainer.callbacks`` lists.
    """

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the hyperparameters of --ckpt_path before the trainer loads it; a
        # file torch.load cannot read gets the same message as from AtomicCheckpointIO.
        try:
            super()._parse_ckpt_path()
        except LOAD_ERRORS as error:
            raise unreadable(self.config[self.config.subcommand].ckpt_path, error) from error

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


def build_cli(args: list[str] | None = None, run: bool = True) -> LCTrainCLI:
    """Parse ``args`` (default ``sys.argv[1:]``), run the subcommand unless ``run`` is false,
    and return the CLI with its ``trainer``, ``model`` and ``datamodule``."""
    return LCTrainCLI(
        ImageClassifier,
        ImageDataModule,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        seed_everything_default=0,
        trainer_defaults=TRAINER_DEFAULTS,
        save_config_kwargs={"overwrite": True},
        args=args,
        run=run,
    )


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
