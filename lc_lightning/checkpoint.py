"""Checkpoint files that are never torn, and a clear error for one that cannot be read."""

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lc_lightning.errors import CheckpointError
from lc_lightning.run_directory import write_atomically


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
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"no checkpoint file at {path.resolve()}")
        try:
            if map_location is None:
                return super().load_checkpoint(path, weights_only=weights_only)
            return super().load_checkpoint(path, map_location, weights_only)
        except LOAD_ERRORS as error:
            raise unreadable(path, error) from error


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
