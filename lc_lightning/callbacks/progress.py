"""ProgressBar: Lightning's TQDM progress bar, redrawn by time rather than every step."""

import time

from lightning import LightningModule, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar


class ProgressBar(TQDMProgressBar):
    """The progress bar of lc-train: Lightning's TQDM bar, whose training bar is redrawn at most
    every ``refresh_seconds`` and at the last batch of each epoch.

    Drawing the bar reads the logged loss and accuracy from the device, which waits for it to
    finish the step: redrawn every step, a fast GPU would wait once per step. Where a step takes
    longer than ``refresh_seconds`` (on a CPU, say) it is still redrawn every step. The
    validation bars are Lightning's.
    """

    def __init__(self, refresh_seconds: float = 0.5) -> None:
        super().__init__(refresh_rate=1)
        self.refresh_seconds = refresh_seconds
        self._drawn_at = float("-inf")

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        now = time.monotonic()
        last = batch_idx + 1 == self.total_train_batches
        if last or now - self._drawn_at >= self.refresh_seconds:
            self._drawn_at = now
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
