"""Checkpoint files: written so that they are never torn, read with a clear error for one that cannot be read,
and checked against the model that is to load them."""

import errno
import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lc_lightning.errors import CheckpointError, InvalidArgumentError
from lc_lightning.run_directory import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    LAST_CHECKPOINT,
    RunDirectory,
    config_leaves,
    write_atomically,
)

CHECKPOINT_KEYWORDS = ("last", "best", "hpc", "registry")
"""The values of ``--ckpt_path`` that name no file."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """TorchCheckpointIO whose files are replaced atomically, and whose load errors say which file.

    A checkpoint is written with lc_lightning.run_directory.write_atomically: whatever kills the
    process meanwhile, the final path holds the old complete file or the new complete file, and
    its permissions follow the umask. A write that fails (a full disk) raises its OSError, naming the
    file. A missing, truncated or corrupt file given to ``load_checkpoint`` (``--ckpt_path``) raises
    CheckpointError naming it.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        write_atomically(Path(path), lambda file: _save(checkpoint, file), sole_writer=True)  # the run's holder

    def load_checkpoint(self, path, map_location: Any = None, weights_only: bool | None = None) -> dict[str, Any]:
        load = super().load_checkpoint
        if map_location is None:
            return _loaded(Path(path), lambda: load(path, weights_only=weights_only))
        return _loaded(Path(path), lambda: load(path, map_location, weights_only))


def _save(checkpoint: dict[str, Any], file) -> None:
    """torch.save, raising the OSError of a failed write (a full disk) rather than the RuntimeError
    torch's zip writer raises after it."""
    try:
        torch.save(checkpoint, file)
    except RuntimeError as error:
        if isinstance(error.__context__, OSError):
            raise error.__context__ from None
        raise


# What torch.load raises for a truncated or corrupt file.
LOAD_ERRORS = (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, ValueError)


def unreadable(path, error: Exception) -> CheckpointError:
    """The error for a checkpoint file that torch.load could not read (``error``, one of LOAD_ERRORS)."""
    return CheckpointError(
        f"cannot read checkpoint {Path(path).resolve()}: it is truncated or corrupt (torch.load raised "
        f"{type(error).__name__}); pass another one with --ckpt_path"
    )


def read_checkpoint(path: Path) -> dict:
    """The checkpoint at ``path``, memory-mapped (its tensors are read only when used); CheckpointError
    naming the file where it is missing, truncated or corrupt, or saying which file to give where ``path``
    is a directory (a run's, its checkpoints/ folder...)."""
    return _loaded(Path(path), lambda: torch.load(path, map_location="cpu", mmap=True, weights_only=True))


def _loaded(path: Path, load: Callable[[], dict]) -> dict:
    """What ``load`` reads from the checkpoint file ``path``, or the CheckpointError that says why it cannot."""
    if path.is_dir():
        raise CheckpointError(checkpoint_directory_advice(path))
    if not path.is_file():
        raise CheckpointError(f"no checkpoint file at {path.resolve()}")
    try:
        return load()
    except LOAD_ERRORS as error:
        raise unreadable(path, error) from error
    except OSError as error:
        if error.errno != errno.EINVAL:  # mmap refuses a file cut short
            raise
        raise unreadable(path, error) from error


def check_fits(model_state: dict, checkpoint: dict | None, ckpt_path: str | None, subcommand: str) -> None:
    """InvalidArgumentError where the ``checkpoint`` (read from ``ckpt_path``; None for none) does not fit the
    model whose state dict is ``model_state`` (see ``checkpoint_mismatch``), saying which config to give a
    ``subcommand`` ("fit", "validate", "test") of it."""
    if checkpoint is None:
        return
    mismatch = checkpoint_mismatch(model_state, checkpoint.get("state_dict", {}))
    if not mismatch:
        return
    trained = RunDirectory.containing(Path(ckpt_path))
    if trained is None:
        advice = "Give the config it was trained with"
    elif subcommand == "fit":
        advice = f"It was trained with {trained.config_file}: resume from that config, without model options"
    else:
        advice = (
            f"It was trained with {trained.config_file}: {subcommand} it with --ckpt_path alone, which "
            "starts from that config, adding only the options that change the evaluation"
        )
    raise InvalidArgumentError(
        f"checkpoint {ckpt_path} does not fit the model this config builds ({mismatch}). {advice}"
    )


def replaced_model_options(given, used, ckpt_path: str) -> str | None:
    """The line saying which model options of the ``given`` model config (a Namespace) LightningCLI replaced
    by the ``ckpt_path`` checkpoint's own (``used``: its hyperparameters), None where it replaced none."""
    given, used = config_leaves(given.as_dict(), "model."), config_leaves(used.as_dict(), "model.")
    replaced = [f"--{key}={given[key]} (its {used[key]})" for key in given if key in used and used[key] != given[key]]
    if not replaced:
        return None
    return f"checkpoint {ckpt_path} keeps the model it was trained with, in place of {', '.join(replaced)}"


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


def checkpoint_directory_advice(path: Path) -> str:
    """What to give ``--ckpt_path`` instead of the directory ``path``: the run's checkpoints/last.ckpt
    where it has one, else the checkpoints it holds, else that it holds none."""
    run = (path / CONFIG_FILE).is_file()
    what = "a run directory" if run else "a directory"
    for last in (path / CHECKPOINT_DIR / LAST_CHECKPOINT, path / LAST_CHECKPOINT):
        if last.is_file():
            return f"--ckpt_path {path} is {what}, not a checkpoint file: give {last}"
    held = sorted(path.glob("*.ckpt")) + sorted(path.glob(f"{CHECKPOINT_DIR}/*.ckpt"))
    if held:
        more = f" ({len(held) - 3} more)" if len(held) > 3 else ""
        listing = ", ".join(str(checkpoint) for checkpoint in held[:3])
        return f"--ckpt_path {path} is {what}, not a checkpoint file: give one of its checkpoints, {listing}{more}"
    runs = sorted(last.parent.parent for last in path.glob(f"*/{CHECKPOINT_DIR}/{LAST_CHECKPOINT}"))
    if runs:
        example = runs[-1] / CHECKPOINT_DIR / LAST_CHECKPOINT
        return (
            f"--ckpt_path {path} is a folder of {len(runs)} run(s), not a checkpoint file: give one run's "
            f"checkpoints/last.ckpt, e.g. {example}"
        )
    if run:
        return f"--ckpt_path {path} is a run directory that holds no checkpoint (*.ckpt): the run saved none"
    return f"--ckpt_path {path} is a directory that holds no checkpoint (*.ckpt): give a checkpoint file"
