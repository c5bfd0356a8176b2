"""The short ``lc-train <subcommand> --help``: the options a user sets, described by the
docstrings of the classes that take them. ``--help-all`` prints LightningCLI's complete reference."""

import inspect
import re
import textwrap

import docstring_parser
from lightning import Trainer

from lc_lightning import data, models
from lc_lightning.data import ImageDataModule
from lc_lightning.module import ImageClassifier
from lc_lightning.optim import PaperSGD

TRAINER_OPTIONS = (
    "max_epochs", "accelerator", "devices", "num_nodes", "precision", "fast_dev_run",
    "limit_train_batches", "limit_val_batches", "log_every_n_steps", "enable_progress_bar",
)  # fmt: skip
"""The Trainer options the short help shows, in this order."""

_SENTENCE_END = re.compile(r"(?<=\.)\s+(?=[A-Z])")
_STATED_DEFAULT = re.compile(r"Default: ([^\s]+?)\.?(?:\s|$)")
_NAME_WIDTH = 42
_WIDTH = 110


def short_help(subcommand: str, trainer_defaults: dict) -> str:
    """The text of ``lc-train <subcommand> --help``: how options are given; the networks', the
    recipe's, the data's and the most used Trainer options, each with its default (lc-train's
    own from ``trainer_defaults``) and its docstring's description; where the rest is."""
    networks = [getattr(models, name) for name in models.__all__]
    datamodules = [getattr(data, name) for name in data.__all__ if name != "ImageDataModule"]
    network_lines = []
    for network in networks:
        network_lines += [_class_line(network), *_options(network, "model.network.init_args.")]
    sections = [
        f"usage: lc-train {subcommand} [--config FILE ...] [--OPTION=VALUE ...]\n\n"
        "Options come from YAML configs (--config, repeatable: later files override earlier ones) and from\n"
        "the command line, which overrides the configs. --print_config prints the complete config and exits.",
        _section(
            "Network: --model.network=CLASS (default lc_lightning.models.CifarResNet), then its arguments",
            network_lines,
        ),
        _section("Recipe (the paper's by default)", _recipe_options()),
        _section(
            "Data: --data=CLASS or --data=configs/data/<dataset>.yaml, then what every DataModule takes",
            [*map(_class_line, datamodules), *_options(ImageDataModule, "data.")],
        ),
        _section(
            "Trainer (the most used options)",
            [
                *_options(Trainer, "trainer.", TRAINER_OPTIONS, trainer_defaults),
                _entry("--trainer.logger.init_args.name", "the run's folder under logs/ (each config sets its own)"),
            ],
        ),
        _section(
            "Run",
            [
                _entry("--ckpt_path=last|FILE", "resume from the run's newest checkpoint, or from the checkpoint FILE"),
                _entry("--seed_everything=0", "the seed of the random init, the data order and the augmentation"),
                _entry("--checkpoint.*, --lr_monitor.*", "the always-on ModelCheckpoint and LearningRateMonitor"),
            ],
        ),
        f"lc-train {subcommand} --help-all lists every option (Trainer, callbacks, loggers);\n"
        "--model.network.help=CLASS and --data.help=CLASS describe one class.",
    ]
    return "\n\n".join(sections) + "\n"


def _section(title: str, entries: list[str]) -> str:
    return f"{title}:\n" + "\n".join(entries)


def _recipe_options() -> list[str]:
    """ImageClassifier's options, the default optimizer's arguments under ``--model.optimizer``."""
    entries = []
    for name in _defaulted(ImageClassifier):
        entries += _options(ImageClassifier, "model.", [name])
        if name == "optimizer":
            entries += _options(PaperSGD, "model.optimizer.", indent=4)
    return entries


def _class_line(cls: type) -> str:
    """The class's import path (from its package) and the first line of its docstring."""
    package = cls.__module__.rsplit(".", 1)[0]
    return _entry(f"{package}.{cls.__name__}", (inspect.getdoc(cls) or "").split("\n")[0].replace("``", ""))


def _defaulted(cls: type) -> list[str]:
    """The arguments of ``cls.__init__`` that have a default value, in order."""
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    return [parameter.name for parameter in parameters if parameter.default is not inspect.Parameter.empty]


def _options(cls: type, prefix: str, names=None, defaults: dict | None = None, indent: int = 2) -> list[str]:
    """One entry per argument of ``cls.__init__`` in ``names`` (default: every one with a default
    value), with that value (or the one in ``defaults``) and its docstring's description."""
    parameters = dict(list(inspect.signature(cls.__init__).parameters.items())[1:])
    if names is None:
        names = _defaulted(cls)
    descriptions = _descriptions(cls)
    entries = []
    for name in names:
        description = descriptions.get(name, "")
        default = (defaults or {}).get(name, parameters[name].default)
        stated = _STATED_DEFAULT.search(description)
        if default is None and stated:  # Lightning's Trainer: None in the signature, the real default in the text
            text = stated.group(1).strip("`'\"")
            default = {"True": True, "False": False}.get(text, text)
        shown = "" if isinstance(default, dict) else f"={_yaml(default)}"
        entries.append(_entry(f"--{prefix}{name}{shown}", _SENTENCE_END.split(description, maxsplit=1)[0], indent))
    return entries


def _descriptions(cls: type) -> dict[str, str]:
    """Each argument's description in the Args section of the class's (or its __init__'s) docstring."""
    docstring = docstring_parser.parse(inspect.getdoc(cls) or "")
    if not docstring.params:
        docstring = docstring_parser.parse(inspect.getdoc(cls.__init__) or "")
    described = {}
    for param in docstring.params:
        text = " ".join((param.description or "").replace("``", "").split())
        for name in param.arg_name.split(","):
            described.setdefault(name.strip(), text)
    return described


def _yaml(value) -> str:
    """``value`` as it is written in a config or on the command line."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    return str(value)


def _entry(name: str, description: str, indent: int = 2) -> str:
    """``name`` and ``description`` in two columns, the description wrapped; a long name on its own line."""
    name = " " * indent + name
    column = " " * _NAME_WIDTH
    text = textwrap.fill(description, _WIDTH, initial_indent=column, subsequent_indent=column) if description else ""
    if len(name) >= _NAME_WIDTH - 1:
        return f"{name}\n{text}" if text else name
    return name.ljust(_NAME_WIDTH) + text[_NAME_WIDTH:]
