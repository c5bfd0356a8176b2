"""The lc-train arguments that say where a run lives: the run directory pinned in the trainer config before
anything is built, and the command lines of a run moved elsewhere or of an evaluation of its checkpoint."""

import importlib
import warnings
from argparse import ArgumentError, ArgumentParser
from pathlib import Path

import yaml
from jsonargparse import Namespace
from lightning.pytorch.loggers import TensorBoardLogger

from lc_lightning.argument_errors import concerns_the_user_s_input, explain_parse_error
from lc_lightning.checkpoint import CHECKPOINT_KEYWORDS, read_checkpoint
from lc_lightning.command_line import check_config_files, config_arguments, option_value
from lc_lightning.distributed import global_rank, under_slurm
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_directory import EVALUATION_STAGES, RunDirectory

RUN_S_CONFIG = "the config of the run whose checkpoint --ckpt_path names"


def command_line_to_parse(args: list[str]) -> tuple[list[str], RunDirectory | None]:
    """The command line lc-train parses for ``args``, and the run whose config it starts from (None where it
    starts from none): a run's config.yaml among the ``--config`` files places the fit where that run lies now
    (``with_runs_where_they_are``), and a validate or test of a run's checkpoint starts from that run's config
    (``with_evaluated_run_config``). A directory as ``--ckpt_path`` and missing or malformed config files
    (the user's or the run's) raise their one-line error before the parser sees them."""
    ckpt_path = option_value(args, "--ckpt_path")
    if ckpt_path not in (None, *CHECKPOINT_KEYWORDS) and Path(ckpt_path).is_dir():
        read_checkpoint(Path(ckpt_path))  # says which file to give instead, before the parser asks for more
    check_config_files(args)
    args = with_runs_where_they_are(args)
    evaluation = with_evaluated_run_config(args)
    if evaluation is None:
        return args, None
    with_run, evaluated = evaluation
    try:
        check_config_files(with_run)  # the user's own passed above: the run's config
    except InvalidArgumentError as error:
        raise InvalidArgumentError(f"{error} ({RUN_S_CONFIG})") from None
    return with_run, evaluated


def parse_error_line(
    error: ArgumentError, parser: ArgumentParser, command_line: list[str], evaluated: RunDirectory | None
) -> str:
    """The one line for the parse ``error`` of the ``command_line`` given (argument_errors.explain_parse_error);
    where it is about the config of the ``evaluated`` run that lc-train put in front of it (see
    ``command_line_to_parse``), it names that config."""
    message = explain_parse_error(error, parser)
    if evaluated is not None and not concerns_the_user_s_input(message, command_line):
        message += f"; check {evaluated.config_file}, {RUN_S_CONFIG}"
    return message


def config_text(parser: ArgumentParser, config: Namespace, subcommand: str) -> str:
    """The ``subcommand``'s complete ``config`` as YAML, as its directory's config.yaml records it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # skip_none, as Lightning's SaveConfigCallback
        dumped = yaml.safe_load(parser.dump(config, skip_none=False))
    return yaml.safe_dump(dumped[subcommand], sort_keys=False, allow_unicode=True)


def with_evaluated_run_config(args: list[str]) -> tuple[list[str], RunDirectory] | None:
    """``args`` of ``lc-train validate`` or ``test`` with the config of the run whose checkpoint
    ``--ckpt_path`` names put first, so that the user's own configs and options apply on top of it, and that
    run; None for other arguments (another subcommand, no --ckpt_path, a checkpoint outside any run).
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
    return [*args[: first + 1], *run_config, *args[first + 1 :]], run


def with_runs_where_they_are(args: list[str]) -> list[str]:
    """``args`` with, right after each ``--config`` that is a run's config.yaml, the options that place a
    fit in that run's directory where it lies now (its logger's ``save_dir``, ``name`` and
    ``default_root_dir``), so that a run moved or copied elsewhere resumes in its own directory; options
    given after it still apply."""
    placed = list(args)
    for index, config in reversed(config_arguments(args)):
        run = RunDirectory.of_config(config)
        if run is not None:
            placed[index + 1 : index + 1] = run.placement_options()
    return placed


def pin_directory(subcommand: str, trainer, ckpt_path: str | None) -> tuple[RunDirectory | None, Path | None]:
    """The directory of a ``subcommand`` (``pin_run_directory`` for a fit, ``pin_evaluation_directory`` for a
    validate or test of ``ckpt_path``) fixed in the ``trainer`` config, and the topmost folder this process
    created for it; None with a logger other than TensorBoard's."""
    if subcommand == "fit":
        return pin_run_directory(trainer)
    return pin_evaluation_directory(trainer, subcommand, ckpt_path)


def pin_run_directory(trainer) -> tuple[RunDirectory | None, Path | None]:
    """The directory of a fit (RunDirectory.for_fit) fixed in the ``trainer`` config before anything is
    built, and the topmost folder this process created for it (None where it created none).

    With the TensorBoardLogger a run lives in ``<save_dir>/<name>/<version>``: ``save_dir`` becomes
    absolute, an unset version the new run's directory name and an unset ``default_root_dir`` the run
    directory. Other loggers have no run directory: None.
    """
    args = _tensorboard_args(trainer)
    if args is None:
        return None, None
    args.save_dir = str(Path(args.save_dir).resolve())
    root = Path(args.save_dir) / (args.name or "")
    run, created = RunDirectory.for_fit(root, args.version, global_rank(), under_slurm())
    if args.version is None:
        args.version = run.path.name
    if trainer.default_root_dir is None:
        trainer.default_root_dir = str(run.path)
    return run, created


def pin_evaluation_directory(trainer, stage: str, ckpt_path: str | None) -> tuple[RunDirectory | None, Path | None]:
    """The directory of a validate or test (``stage``) of ``ckpt_path`` (RunDirectory.for_evaluation),
    fixed in the ``trainer`` config, and the topmost folder this process created for it: the
    TensorBoardLogger and ``default_root_dir`` are pointed at it. None with another logger."""
    args = _tensorboard_args(trainer)
    if args is None:
        return None, None
    checkpoint = Path(ckpt_path) if ckpt_path not in (None, *CHECKPOINT_KEYWORDS) else None
    root = Path(args.save_dir).resolve() / (args.name or "")
    evaluation, created = RunDirectory.for_evaluation(checkpoint, root, stage, global_rank(), under_slurm())
    args.save_dir, args.name, args.version = str(evaluation.path.parent), "", evaluation.path.name
    trainer.default_root_dir = str(evaluation.path)
    return evaluation, created


def _tensorboard_args(trainer) -> Namespace | None:
    """The init_args of the trainer config's logger if it is a TensorBoardLogger, else None."""
    logger = trainer.logger
    if not isinstance(logger, Namespace):
        return None
    module, _, name = (logger.get("class_path") or "").rpartition(".")
    try:
        tensorboard = issubclass(getattr(importlib.import_module(module), name), TensorBoardLogger)
    except (ImportError, AttributeError, ValueError, TypeError):
        return None
    return logger.init_args if tensorboard else None
