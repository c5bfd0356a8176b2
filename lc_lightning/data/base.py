"""The shared base of the image DataModules."""

import os
from pathlib import Path

import torch
from lightning import LightningDataModule
from torch.utils.data import DataLoader, Dataset, Sampler, Subset
from torchvision import transforms

from lc_lightning.data.seeded import EpochSampler, LazyStartDataLoader, SeededAugmentation
from lc_lightning.distributed import fail_on_every_rank
from lc_lightning.errors import DatasetNotFoundError, InvalidArgumentError, UserInputError


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
        num_workers: DataLoader worker processes per training process (0 loads in the main
            process). ``None`` picks one per CPU core of this process, less one for the process
            itself: the cores SLURM gives the task (``SLURM_CPUS_PER_TASK``), else the cores
            this process may run on divided among the trainer's devices on this node.
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
        num_workers: int | None = None,
        train_subset: int | None = None,
        val_subset: int | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("batch_size", batch_size), ("train_subset", train_subset), ("val_subset", val_subset)):
            if value is not None and value < 1:
                raise InvalidArgumentError(f"{name} must be >= 1, got {value}")
        if num_workers is not None and num_workers < 0:
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
        """Read the splits ``stage`` needs. Under DDP a dataset that cannot be read on one
        process stops every process with its message (see fail_on_every_rank)."""
        error = None
        try:
            if stage == "fit":
                self.train_set = _subset(self.make_dataset(True, self.train_transform()), self.train_subset)
            self.val_set = _subset(self.make_dataset(False, self.val_transform()), self.val_subset)
        except UserInputError as caught:
            error = caught
        fail_on_every_rank(error)

    def train_dataloader(self) -> DataLoader:
        """Shuffled training batches; order and augmentations follow from (seed, epoch, image)
        alone (see lc_lightning.data.seeded), split over the DDP ranks like Lightning's own
        sampler. The seed is the run's ``seed_everything``."""
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        world_size, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = EpochSampler(self.train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
        return self._loader(SeededAugmentation(self.train_set, seed), sampler, loader_class=LazyStartDataLoader)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.val_set)

    def not_found(self, path: Path, detail: str) -> DatasetNotFoundError:
        """The error for a dataset missing at ``path``: what is wrong (``detail``) and both fixes."""
        return DatasetNotFoundError(
            f"{type(self).__name__}: no dataset at {Path(path).resolve()} ({detail}). Pass "
            f"--data.download=true to download it, or --data.data_dir=DIR for the directory that holds it."
        )

    def workers(self) -> int:
        """The DataLoader workers per process: ``num_workers``, or the automatic choice for ``None``."""
        if self.num_workers is not None:
            return self.num_workers
        if "SLURM_CPUS_PER_TASK" in os.environ:
            cpus = int(os.environ["SLURM_CPUS_PER_TASK"])
        else:
            processes_on_node = self.trainer.num_devices if self.trainer is not None else 1
            cpus = _usable_cpus() // processes_on_node
        return max(1, cpus - 1)

    def _loader(
        self, dataset: Dataset, sampler: Sampler | None = None, loader_class: type[DataLoader] = DataLoader
    ) -> DataLoader:
        workers = self.workers()
        return loader_class(
            dataset,
            batch_size=self.batch_size,
            sampler=sampler,
            num_workers=workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=workers > 0,
        )


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _subset(dataset: Dataset, size: int | None) -> Dataset:
    """A fixed random subset (seed 0, independent of the run's seed) of ``size`` items."""
    if size is None or size >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:size]
    return Subset(dataset, indices.tolist())
