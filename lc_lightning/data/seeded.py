"""Training data as a function of (seed, epoch, image) alone.

The order of the images in an epoch and every random augmentation of an image depend only on
the run's seed, the epoch and the image's index: not on how many DataLoader workers there are,
whether they persist, or whether the run was stopped and resumed. A run resumed at an epoch
boundary therefore trains on exactly the batches the uninterrupted run would have seen.
"""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler


class EpochSampler(DistributedSampler):
    """torch's DistributedSampler (a permutation drawn from seed + epoch, split over the ranks)
    whose keys carry their epoch: it yields ``(epoch, index)`` for SeededAugmentation.

    Lightning calls ``set_epoch`` before each training epoch and keeps this sampler under DDP
    (it is already a DistributedSampler), so every rank draws the same permutation.
    """

    def __iter__(self):
        epoch = self.epoch
        return ((epoch, index) for index in super().__iter__())


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


class LazyStartDataLoader(DataLoader):
    """A DataLoader whose iterator starts (its workers prefetching the first indices) at the first
    batch asked for, not at ``iter()``.

    Lightning 2.6 creates the training iterator of the first epoch of a resumed run before it
    calls the sampler's ``set_epoch`` (Lightning issue #21938); worker processes would then
    prefetch the start of epoch 0's permutation instead of the restored epoch's.
    """

    def __iter__(self):
        return _LazyStart(super().__iter__)


class _LazyStart:
    """An iterator that calls ``start()`` for the real one at its first ``next``."""

    def __init__(self, start) -> None:
        self._start = start
        self._iterator = None

    def __iter__(self):
        return self

    def __next__(self):
        if self._iterator is None:
            self._iterator = self._start()
        return next(self._iterator)
