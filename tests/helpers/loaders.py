"""Data loaders for the tests: the CIFAR-10 DataModule's two paths over the same files, an epoch's batches, where
an augmented image came from, and a DataModule of fixed random fp64 images."""

from types import SimpleNamespace

import torch
from lightning import LightningDataModule
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from lc_lightning.data import CIFAR10DataModule


def cifar_modules(root, **kwargs) -> tuple[CIFAR10DataModule, CIFAR10DataModule]:
    """The torchvision and the device path over the same files, set up for fit."""
    modules = (
        CIFAR10DataModule(data_dir=str(root), batch_size=16, num_workers=0, **kwargs),
        CIFAR10DataModule(data_dir=str(root), batch_size=16, loader="device", **kwargs),
    )
    for data in modules:
        data.setup("fit")
    return modules


def cpu_trainer(world_size: int = 1, global_rank: int = 0, overfit_batches: float = 0) -> SimpleNamespace:
    """What the DataModule reads of its trainer."""
    strategy = SimpleNamespace(root_device=torch.device("cpu"))
    return SimpleNamespace(
        world_size=world_size, global_rank=global_rank, overfit_batches=overfit_batches, strategy=strategy
    )


def epoch_batches(loader, epoch: int) -> list:
    """Every batch of ``loader`` in training epoch ``epoch``."""
    loader.sampler.set_epoch(epoch)  # as Lightning does before each epoch
    return list(loader)


def window_offsets(augmented: torch.Tensor, originals: torch.Tensor, padding: int) -> list[tuple[bool, int, int]]:
    """For each augmented (C, H, W) image, the (flipped, top, left) of the window of its zero-padded
    original it equals; fails if it equals none."""
    height, width = originals.shape[-2:]
    padded = F.pad(originals, (padding,) * 4)
    found = []
    for image, source in zip(augmented, padded, strict=True):
        matches = [
            (flipped, top, left)
            for flipped in (False, True)
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
            if torch.equal(image, (source.flip(-1) if flipped else source)[:, top : top + height, left : left + width])
        ]
        assert matches, "not a window of the zero-padded (flipped) original"
        found.append(matches[0])
    return found


class RandomImages(LightningDataModule):
    """30 batches of 16 random fp64 images and labels: the same every run."""

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(1)
        images = torch.rand(30 * 16, 3, 32, 32, generator=generator, dtype=torch.float64)
        labels = torch.randint(0, 10, (30 * 16,), generator=generator)
        return DataLoader(TensorDataset(images, labels), batch_size=16)
