"""The shared base of the image DataModules."""

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Subset
from torchvision import transforms

from lc_lightning.errors import InvalidArgumentError


class ImageDataModule(LightningDataModule):
    """Train and validation splits of an image classification dataset as [0, 1] tensors.

    Subclasses set ``num_classes``, ``in_channels`` and the per-channel ``mean``/``std`` of
    the training images (the CLI links them into the model, which normalises inside), and
    implement ``make_dataset`` and the transforms. "Validation" is the dataset's official
    test split, as in the paper; ``test`` uses the same split.

    Args:
        data_dir: directory holding the dataset (or receiving it when ``download`` is true).
        download: download the dataset into ``data_dir`` if it is not there (needs internet).
        batch_size: images per batch and process.
        num_workers: DataLoader worker processes per process (0 loads in the main process).
        train_subset: train on a fixed random subset of this many images (quick runs).
        val_subset: validate on a fixed random subset of this many images (quick runs).
    """

    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = False,
        batch_size: int = 256,
        num_workers: int = 4,
        train_subset: int | None = None,
        val_subset: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("train_subset", train_subset), ("val_subset", val_subset)):
            if value is not None and value < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {value}")
        if num_workers < 0:
            raise InvalidArgumentError(f"num_workers must be >= 0, got {num_workers}")
        self.data_dir = data_dir
        self.download = download
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_subset = train_subset
        self.val_subset = val_subset

    def make_dataset(self, train: bool, transform) -> Dataset:
        """The train (``train=True``) or official test split with ``transform`` applied.

        Raises DatasetNotFoundError naming the path and the fix when the data is missing.
        """
        raise NotImplementedError

    def download_dataset(self) -> None:
        """Download both splits into ``data_dir`` unless they are already there."""
        raise NotImplementedError

    def train_transform(self) -> transforms.Compose:
        """The paper's training augmentation, ending in a [0, 1] float tensor."""
        return self.val_transform()

    def val_transform(self) -> transforms.Compose:
        """The deterministic evaluation transform, ending in a [0, 1] float tensor."""
        return transforms.Compose([transforms.ToTensor()])

    def prepare_data(self) -> None:
        if self.download:
            self.download_dataset()

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.train_set = _subset(self.make_dataset(True, self.train_transform()), self.train_subset)
        self.val_set = _subset(self.make_dataset(False, self.val_transform()), self.val_subset)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def _loader(self, dataset: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )


def _subset(dataset: Dataset, size: int | None) -> Dataset:
    """A fixed random subset (seed 0, independent of the run's seed) of ``size`` items."""
    if size is None or size >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:size]
    return Subset(dataset, indices.tolist())
