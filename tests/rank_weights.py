"""A callback for the multi-process tests: every rank saves its final weights (importable by class path)."""

from pathlib import Path

import torch
from lightning import Callback


class SaveRankWeights(Callback):
    """At the end of fit, rank r saves its model's state dict to ``<directory>/rank<r>.pt``."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)

    def on_fit_end(self, trainer, pl_module) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(pl_module.state_dict(), self.directory / f"rank{trainer.global_rank}.pt")
