"""ImageClassifier: the one LightningModule, wrapping an injected network."""

from collections.abc import Callable, Sequence

import torch
from lightning import LightningModule
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from lc_lightning.errors import InvalidArgumentError

NetworkFactory = Callable[[int, int], nn.Module]
"""Builds the network as ``factory(num_classes, in_channels)``, e.g. a network class."""


class ImageClassifier(LightningModule):
    """Trains an image classifier with the paper's recipe.

    Images enter in [0, 1]; the module normalises them with the dataset's ``mean``/``std``
    (buffers saved in checkpoints) before the network, so attacks and visualisations work
    in pixel space. Loss: cross-entropy with label smoothing. Optimiser: SGD with (Nesterov)
    momentum and weight decay on every parameter that requires grad (frozen ones are left
    out), learning rate annealed to 0 by a cosine schedule stepped every batch over the
    whole run. Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc`` (and ``test/*``).

    Args:
        network: builds the network from (num_classes, in_channels), e.g. ``CifarResNet``
            with its other arguments bound (in a config: ``class_path`` + ``init_args``).
        num_classes, in_channels, mean, std: from the DataModule (the CLI links them).
        lr: peak learning rate. momentum, nesterov, weight_decay: SGD's.
        label_smoothing: of the cross-entropy loss.
    """

    def __init__(
        self,
        network: NetworkFactory,
        num_classes: int,
        in_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        lr: float = 0.01,
        momentum: float = 0.9,
        nesterov: bool = True,
        weight_decay: float = 0.01,
        label_smoothing: float = 0.1,
    ) -> None:
        super().__init__()
        if len(mean) != in_channels or len(std) != in_channels:
            raise InvalidArgumentError(
                f"mean and std need {in_channels} values (one per channel), got {mean} and {std}"
            )
        self.save_hyperparameters(ignore=["network"])
        self.network = network(num_classes, in_channels)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images in [0, 1] of shape (N, in_channels, H, W)."""
        return self.network((images - self.mean) / self.std)

    def _step(self, batch, stage: str, accuracy: MulticlassAccuracy) -> torch.Tensor:
        images, targets = batch
        logits = self(images)
        loss = F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)
        accuracy(logits, targets)
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, on_step=on_step, on_epoch=True, prog_bar=True, sync_dist=not on_step)
        self.log(f"{stage}/acc", accuracy, on_step=on_step, on_epoch=True, prog_bar=True)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_acc)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val", self.val_acc)

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test", self.test_acc)

    def configure_optimizers(self):
        hp = self.hparams
        trainable = [p for p in self.parameters() if p.requires_grad]
        optimizer = torch.optim.SGD(
            trainable, lr=hp.lr, momentum=hp.momentum, nesterov=hp.nesterov, weight_decay=hp.weight_decay
        )
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
