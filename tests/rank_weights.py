"""Callbacks for the multi-process tests (importable by class path), and a bitwise comparison of what they save."""

from pathlib import Path

import torch
from lightning import Callback
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks


class SaveRankWeights(Callback):
    """At the end of fit, rank r saves its model's state dict to ``<directory>/rank<r>.pt``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.directory / f"rank{trainer.global_rank}.pt")


class CountAllReducedBytes(Callback):
    """Counts the bytes of gradients DDP all-reduces each optimizer step (a communication hook on the DDP
    model); at the end of fit, rank r saves the list, one total per step, to ``<directory>/bytes<r>.pt``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.per_step: list[int] = []

    def on_fit_start(self, trainer, pl_module) -> None:
        def count(state, bucket):
            self.per_step[-1] += bucket.buffer().numel() * bucket.buffer().element_size()
            return default_hooks.allreduce_hook(state, bucket)

        trainer.strategy.model.register_comm_hook(None, count)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.per_step.append(0)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.per_step, self.directory / f"bytes{trainer.global_rank}.pt")


def assert_same_state(state: dict, expected: dict) -> None:
    """Bitwise the same state dicts, extra states (dicts of tensors and numbers) included."""
    assert state.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, dict):
            assert_same_state(state[name], value)
        elif isinstance(value, torch.Tensor):
            assert torch.equal(state[name], value), name
        else:
            assert state[name] == value, name
