"""The shared base of the image DataModules."""

import os
from pathlib import Path
from typing import Literal

import torch
from lightning import LightningDataModule
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset
from torchvision import transforms

from lc_lightning.data.device import DeviceLoader
from lc_lightning.data.seeded import EpochSampler, ResumableDataLoader, SeededAugmentation
from lc_lightning.distributed import fail_on_every_rank
from lc_lightning.errors import DatasetNotFoundError, DownloadError, InvalidArgumentError, UserInputError


class ImageDataModule(LightningDataModule):
    """Train and validation splits of an image classification dataset as [0, 1] tensors.

    Subclasses set ``num_classes``, ``in_channels`` and the per-channel ``mean``/``std`` of
    the training images (the CLI links them into the model, which normalises inside), the
    training augmentation (``crop_padding``, ``horizontal_flip``) and implement
    ``make_dataset``. "Validation" is the dataset's official test split, as in the paper;
    ``test`` uses the same split.

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
        loader: ``torch``: torchvision transforms in DataLoader worker processes. ``device``:
            the whole split held on the training device as uint8 and augmented there in
            batches (lc_lightning.data.device), for the 32x32 datasets; the same samples and
            augmentation semantics, without workers or per-batch copies.
    """

    num_classes: int
    in_channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    image_size = 32
    """Side of the (square) images after ``base_transforms``."""
    crop_padding = 0
    """Training augmentation: a random ``image_size`` crop after zero padding of this many pixels (0: none)."""
    horizontal_flip = False
    """Training augmentation: a random left-right flip with probability 0.5."""

    def __init__(
        self,
        data_dir: str = "data",
        download: bool = False,
        batch_size: int = 256,
        num_workers: int | None = None,
        train_subset: int | None = None,
        val_subset: int | None = None,
        loader: Literal["torch", "device"] = "torch",
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
        self.loader = loader
        self._resume_at: tuple[int, int] | None = None

    def make_dataset(self, train: bool, transform) -> Dataset:
        """The train (``train=True``) or official test split with ``transform`` applied.

        Raises DatasetNotFoundError naming the path and the fix when the data is missing.
        """
        raise NotImplementedError

    def download_dataset(self) -> None:
        """Download both splits into ``data_dir`` unless they are already there."""
        raise NotImplementedError

    def download_sources(self) -> tuple[Path, list[str]]:
        """Where ``download_dataset`` puts its files and the URLs it downloads them from, for
        the user to fetch by hand where the download fails."""
        raise NotImplementedError

    def base_transforms(self) -> list:
        """The deterministic PIL transforms every image goes through first (none by default)."""
        return []

    def train_transform(self) -> transforms.Compose:
        """The paper's training augmentation, ending in a [0, 1] float tensor."""
        augmentation = []
        if self.crop_padding:
            augmentation.append(transforms.RandomCrop(self.image_size, padding=self.crop_padding))
        if self.horizontal_flip:
            augmentation.append(transforms.RandomHorizontalFlip())
        return transforms.Compose([*self.base_transforms(), *augmentation, transforms.ToTensor()])

    def val_transform(self) -> transforms.Compose:
        """The deterministic evaluation transform, ending in a [0, 1] float tensor."""
        return transforms.Compose([*self.base_transforms(), transforms.ToTensor()])

    def prepare_data(self) -> None:
        """Download the dataset if asked to; DownloadError with the URLs, the files and the
        directory they go into where that fails (offline, say)."""
        if not self.download:
            return
        try:
            self.download_dataset()
        except UserInputError:
            raise
        except (OSError, RuntimeError) as error:  # urllib's URLError is an OSError; torchvision raises RuntimeError
            directory, urls = self.download_sources()
            files = ", ".join(url.rpartition("/")[2] for url in urls)
            reason = getattr(error, "reason", None) or error
            raise DownloadError(
                f"{type(self).__name__}: the download failed ({reason}). Put {files} into "
                f"{directory.resolve()} and pass --data.download=false\n  download: {' '.join(urls)}"
            ) from error

    def setup(self, stage: str) -> None:
        """Read the splits ``stage`` needs. Under DDP a dataset that cannot be read on one
        process stops every process with its message (see fail_on_every_rank)."""
        error = None
        try:
            if stage == "fit":
                self.train_set = self._read_split(train=True)
            self.val_set = self._read_split(train=False)
        except Exception as caught:  # every process must reach fail_on_every_rank
            error = caught
        fail_on_every_rank(error)

    def _read_split(self, train: bool) -> Dataset | tuple[torch.Tensor, torch.Tensor]:
        """One split, subset if asked, as the loader takes it: a Dataset of transformed images
        for ``torch``, (uint8 images, labels) tensors after ``base_transforms`` for ``device``."""
        size = self.train_subset if train else self.val_subset
        if self.loader == "device":
            uint8 = transforms.Compose([*self.base_transforms(), transforms.PILToTensor()])
            return _stacked(_subset(self.make_dataset(train, uint8), size))
        transform = self.train_transform() if train else self.val_transform()
        return _subset(self.make_dataset(train, transform), size)

    def train_dataloader(self) -> DataLoader | DeviceLoader:
        """Shuffled training batches, split over the DDP ranks like Lightning's own sampler. The
        torch path's order and augmentations follow from (seed, epoch, image) alone (see
        lc_lightning.data.seeded), the device path's from (seed, epoch, rank, batch). The seed is
        the run's ``seed_everything``. Restored from a checkpoint (load_state_dict), the loader's
        epoch starts where the checkpointed run stood."""
        if self.loader == "device":
            # overfit_batches: the same first batches every epoch, as Lightning makes of a DataLoader
            size = len(self.train_set[1])
            if self.trainer is not None and self.trainer.overfit_batches > 0:
                return self._device_loader(self.train_set, self._training_shards(size, shuffle=False))
            loader = self._device_loader(self.train_set, self._training_shards(size, shuffle=True), augment=True)
        else:
            world_size, rank = self._ranks()
            seed = _run_seed()
            sampler = EpochSampler(self.train_set, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
            loader = self._loader(SeededAugmentation(self.train_set, seed), sampler, loader_class=ResumableDataLoader)
        if self._resume_at is not None:
            loader.position.resume_at(*self._resume_at)
        return loader

    def state_dict(self) -> dict:
        """Where the training loader stands (epoch, batches of it delivered), saved in every
        checkpoint: a run resumed from a checkpoint taken in the middle of an epoch goes on with the
        next batch, none seen twice or skipped."""
        loader = self.trainer.train_dataloader if self.trainer is not None else None
        position = getattr(loader, "position", None)
        return {} if position is None else {"train_position": [position.epoch, position.batches]}

    def load_state_dict(self, state_dict: dict) -> None:
        if "train_position" in state_dict:
            self._resume_at = tuple(state_dict["train_position"])

    def val_dataloader(self) -> DataLoader | DeviceLoader:
        """The validation split in order, split over the DDP ranks without repeating an image (see
        ``_evaluation_shards``)."""
        if self.loader == "device":
            return self._device_loader(self.val_set, self._evaluation_shards(len(self.val_set[1])))
        return self._loader(self.val_set, self._evaluation_shards(len(self.val_set)))

    def test_dataloader(self) -> DataLoader | DeviceLoader:
        return self.val_dataloader()

    def _device(self) -> torch.device:
        return self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")

    def _device_loader(
        self, split: tuple[torch.Tensor, torch.Tensor], sampler: DistributedSampler, augment: bool = False
    ) -> DeviceLoader:
        """A DeviceLoader over a (uint8 images, labels) split moved to the training device, this
        rank's share of it as ``sampler`` gives it; with ``augment``, the DataModule's crop and flip."""
        images, labels = (tensor.to(self._device()) for tensor in split)
        padding, flip = (self.crop_padding, self.horizontal_flip) if augment else (0, False)
        return DeviceLoader(images, labels, sampler, self.batch_size, _run_seed(), padding=padding, flip=flip)

    def _training_shards(self, size: int, shuffle: bool) -> DistributedSampler:
        """This rank's share of a training split of ``size`` images, as Lightning's sampler makes it of a
        training DataLoader: equal shares, a few images repeated where the split does not divide."""
        world_size, rank = self._ranks()
        return DistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=shuffle, seed=_run_seed())

    def _evaluation_shards(self, size: int) -> UnrepeatedDistributedSampler:
        """This rank's share of an evaluation split of ``size`` images, in order: over the ranks every
        image exactly once, the shares differing by one image at most. (Lightning's DistributedSampler,
        which it would put in, repeats images to even out the shares: they would count twice in the
        metrics.) Every rank needs one image at least, for DDP's first forward."""
        world_size, rank = self._ranks()
        if size < world_size:
            raise InvalidArgumentError(
                f"the evaluation split has {size} images, fewer than the {world_size} processes: evaluate on more "
                "images (--data.val_subset) or fewer processes"
            )
        return UnrepeatedDistributedSampler(range(size), num_replicas=world_size, rank=rank, shuffle=False)

    def _ranks(self) -> tuple[int, int]:
        """(world size, this process's global rank); (1, 0) without a trainer."""
        return (self.trainer.world_size, self.trainer.global_rank) if self.trainer is not None else (1, 0)

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


def _run_seed() -> int:
    """The run's ``seed_everything`` (0 if unset), as Lightning's own distributed sampler takes it."""
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def _usable_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):  # Linux: the cores this process may run on
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _stacked(dataset: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """All (uint8 image, label) items of ``dataset`` as an (N, C, H, W) uint8 and an (N,) int64 tensor."""
    images, labels = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64)


def _subset(dataset: Dataset, size: int | None) -> Dataset:
    """A fixed random subset (seed 0, independent of the run's seed) of ``size`` items."""
    if size is None or size >= len(dataset):
        return dataset
    indices = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(0))[:size]
    return Subset(dataset, indices.tolist())
