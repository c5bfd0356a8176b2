"""A loader for small datasets that keeps the whole split on the training device.

The split lives on the device as uint8 once; each batch is gathered, randomly cropped and
flipped there as batched tensor operations and converted to float in [0, 1]. No worker
processes, no host-to-device copies per batch. It follows the torchvision path
(``loader: torch``) sample for sample: the same sampler (in training a fresh seeded permutation per
epoch, disjoint shards per DDP rank padded to equal size; in evaluation the split in order, every
image once over the ranks; the last batch partial) and the same augmentation semantics
(torchvision's RandomCrop with zero padding, RandomHorizontalFlip with p = 0.5); only the random
draws of the augmentation differ. Like the torchvision path's loader it
knows where it stands in its epoch and resumes there (lc_lightning.data.seeded.LoaderPosition).
"""

import math

import torch
from torch.nn import functional as F
from torch.utils.data import DistributedSampler

from lc_lightning.data.seeded import LoaderPosition, derived_seed


def random_crop_flip(images: torch.Tensor, padding: int, flip: bool, generator: torch.Generator) -> torch.Tensor:
    """Each image of the (B, C, H, W) batch randomly cropped back to H x W after zero padding of
    ``padding`` pixels on every side (every offset in [0, 2 * padding] equally likely, as
    torchvision's ``RandomCrop(size, padding)``), then, with ``flip``, mirrored left-right with
    probability 0.5. Random draws come from ``generator`` (on the images' device)."""
    batch, channels, height, width = images.shape
    device = images.device
    if padding > 0:
        padded = F.pad(images, (padding, padding, padding, padding))
        top = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
        left = torch.randint(0, 2 * padding + 1, (batch,), generator=generator, device=device)
        rows = (top[:, None] + torch.arange(height, device=device))[:, None, :, None]
        cols = (left[:, None] + torch.arange(width, device=device))[:, None, None, :]
        samples = torch.arange(batch, device=device)[:, None, None, None]
        planes = torch.arange(channels, device=device)[None, :, None, None]
        images = padded[samples, planes, rows, cols]
    if flip:
        mirrored = torch.rand(batch, generator=generator, device=device) < 0.5
        images = torch.where(mirrored[:, None, None, None], images.flip(3), images)
    return images


class DeviceLoader:
    """Batches ``(images, labels)`` of a uint8 split held on one device.

    Args:
        images: (N, C, H, W) uint8 tensor on the device the batches are for.
        labels: (N,) int64 tensor on the same device.
        sampler: torch's DistributedSampler over the N images (world size 1 for one process), or
            a subclass such as Lightning's UnrepeatedDistributedSampler; Lightning calls its
            ``set_epoch`` before each epoch, as for a DataLoader.
        batch_size: images per batch; the last batch of an epoch may be smaller.
        seed: the run's seed; each batch's augmentation draws come from a generator seeded from
            (seed, epoch, rank, batch).
        padding, flip: the augmentation (see random_crop_flip); 0 and False for none.

    Each batch's images are float32 in [0, 1], like ToTensor's. ``position`` follows the batches
    delivered; ``position.resume_at(epoch, batch)`` starts the next iteration over that epoch at
    that batch.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        sampler: DistributedSampler,
        batch_size: int,
        seed: int = 0,
        padding: int = 0,
        flip: bool = False,
    ) -> None:
        self.images = images
        self.labels = labels
        self.sampler = sampler
        self.batch_sampler = None  # Lightning looks for it beside ``sampler``, as on a DataLoader
        self.batch_size = batch_size
        self.seed = seed
        self.padding = padding
        self.flip = flip
        self.position = LoaderPosition()

    def __len__(self) -> int:
        return math.ceil(len(self.sampler) / self.batch_size)

    def __iter__(self):
        device = self.images.device
        epoch = self.sampler.epoch
        order = torch.tensor(list(self.sampler), dtype=torch.int64, device=device)
        generator = torch.Generator(device=device)
        for batch in range(self.position.start(epoch), len(self)):
            indices = order[batch * self.batch_size : (batch + 1) * self.batch_size]
            images = self.images[indices]
            if self.padding or self.flip:
                generator.manual_seed(derived_seed(self.seed, epoch, self.sampler.rank, batch))
                images = random_crop_flip(images, self.padding, self.flip, generator)
            self.position.batches = batch + 1
            yield images.float().div_(255), self.labels[indices]
