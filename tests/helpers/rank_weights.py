"""Callbacks for the multi-process tests that save what each rank holds (importable by class path:
``helpers.rank_weights.SaveRankWeights``); ``helpers.runs.assert_same_state`` compares what they save."""

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
