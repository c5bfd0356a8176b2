"""Networks that fail on purpose, for the fault tests (importable by class path from configs:
``helpers.faulty_networks.NaNAfterSteps``)."""

import torch

from lc_lightning.models import CifarResNet


class NaNAfterSteps(CifarResNet):
    """A CifarResNet whose training forward passes return NaN from the ``nan_from``-th on (0-based)."""

    def __init__(self, num_classes: int, in_channels: int, nan_from: int, depth: int = 8, width: int = 4) -> None:
        super().__init__(num_classes, in_channels, depth=depth, width=width)
        self.nan_from = nan_from
        self.training_calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = super().forward(x)
        if self.training:
            self.training_calls += 1
            if self.training_calls > self.nan_from:
                return logits * torch.nan
        return logits
