"""Errors that stop every DDP process together."""

import torch.distributed as dist

from lc_lightning.errors import UserInputError


def fail_on_every_rank(error: Exception | None) -> None:
    """Raise ``error`` here, and on every other process of the run a UserInputError carrying
    its type and message.

    Every process must call this at the same point (a collective). Without it, a process that
    stops with an error (say, a dataset missing on its node) leaves the others waiting for it
    at their next collective: a hang with NCCL, a crash without the reason with gloo. Outside a
    distributed run it just raises ``error`` if there is one.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        if error is not None:
            raise error
        return
    messages = [None] * dist.get_world_size()
    message = None if error is None else str(error) if isinstance(error, UserInputError) else repr(error)
    dist.all_gather_object(messages, message)
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        raise UserInputError(f"process {rank} stopped: {message}")
