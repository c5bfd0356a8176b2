"""Training data as a function of (seed, epoch, image) alone, resumable in the middle of an epoch.

The order of the images in an epoch and every random augmentation of an image depend only on
the run's seed, the epoch and the image's index: not on how many DataLoader workers there are,
whether they persist, or whether the run was stopped and resumed. A training loader also knows
how many batches of its epoch it has delivered (LoaderPosition), which the DataModule saves in
every checkpoint. A run resumed from any checkpoint therefore trains on exactly the batches the
uninterrupted run would have seen, from the next one on.
"""

import itertools

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class LoaderPosition:
    """Where a training loader stands: the ``epoch`` it is in and the ``batches`` of it delivered so
    far; and, after :meth:`resume_at`, where its next iteration starts."""

    def __init__(self) -> None:
        self.epoch = 0
        self.batches = 0
        self._resume: tuple[int, int] | None = None

    def resume_at(self, epoch: int, batches: int) -> None:
        """Let the next iteration, if it is over ``epoch``, start with batch ``batches`` (0-based)."""
        self._resume = (epoch, batches)

    def start(self, epoch: int) -> int:
        """Begin an iteration over ``epoch``; return the batch it starts with."""
        first = self._resume[1] if self._resume is not None and self._resume[0] == epoch else 0
        self._resume = None
        self.epoch, self.batches = epoch, first
        return first


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (a permutation drawn from seed + epoch, split over the ranks)
    whose keys carry their epoch: it yields ``(epoch, index)`` for SeededAugmentation.

    Lightning calls ``set_epoch`` before each training epoch and keeps this sampler under DDP
    (it is already a DistributedSampler), so every rank draws the same permutation.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` keys of the next iteration (only that one)."""
        self._skip = count

    def __iter__(self):
        epoch, skip = self.epoch, self._skip
        self._skip = 0
        return itertools.islice(((epoch, index) for index in super().__iter__()), skip, None)


class SeededAugmentation(Dataset):
    """``dataset[index]`` read with torch's CPU generator seeded from (seed, epoch, index).

    Keys are ``(epoch, index)`` pairs from EpochSampler. The caller's generator state is
    restored afterwards, so reading in the main process (``num_workers=0``) leaves the run's
    own random stream untouched. A plain integer key (a sampler Lightning substitutes, e.g.
    for ``overfit_batches``) reads the image without seeding.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.dataset[key]
        epoch, index = key
        state = torch.get_rng_state()
        torch.default_generator.manual_seed(derived_seed(self.seed, epoch, index))
        try:
            return self.dataset[index]
        finally:
            torch.set_rng_state(state)


def derived_seed(*numbers: int) -> int:
    """A 64-bit seed for a tuple of non-negative integers such as (seed, epoch, image), well
    mixed (numpy's SeedSequence) so that neighbouring tuples get unrelated random streams."""
    return int(np.random.SeedSequence(list(numbers)).generate_state(1, dtype=np.uint64)[0])


class ResumableDataLoader(DataLoader):
    """A DataLoader over an EpochSampler whose ``position`` (a LoaderPosition) follows the batches
    it delivers, and whose next epoch can start in the middle (``position.resume_at``) without
    reading the batches before.

    Its iterator starts (workers prefetching the first indices) at the first batch asked for, not
    at ``iter()``: Lightning 2.6 creates the training iterator of the first epoch of a resumed run
    before it calls the sampler's ``set_epoch`` (Lightning issue #21938), and worker processes
    would otherwise prefetch the start of epoch 0's permutation instead of the restored epoch's.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.position = LoaderPosition()

    def __iter__(self):
        return _LazyStart(self)


class _LazyStart:
    """The iterator of a ResumableDataLoader: the real one starts at the first ``next``."""

    def __init__(self, loader: ResumableDataLoader) -> None:
        self._loader = loader
        self._iterator = None

    def __iter__(self):
        return self

    def __next__(self):
        loader = self._loader
        if self._iterator is None:
            first = loader.position.start(loader.sampler.epoch)
            loader.sampler.skip_next(first * loader.batch_size)
            self._iterator = DataLoader.__iter__(loader)
        batch = next(self._iterator)
        loader.position.batches += 1
        return batch
