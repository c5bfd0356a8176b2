"""SVHN (cropped digits) on torchvision's dataset class (the ``*_32x32.mat`` files)."""

from pathlib import Path

from torch.utils.data import ConcatDataset
from torchvision import datasets

from lc_lightning.data.base import ImageDataModule


class SVHNDataModule(ImageDataModule):
    """SVHN: 73,257 train / 26,032 test RGB digit images of 32x32, 10 classes.

    Reads ``<data_dir>/train_32x32.mat`` and ``test_32x32.mat`` (and ``extra_32x32.mat``
    with ``extra``), the files torchvision downloads; the digit 0, labelled 10 in the files,
    is class 0. No augmentation, as in the paper.

    Args:
        extra: also train on the 531,131 images of the ``extra`` split (the paper does not).
        **kwargs: those of ``ImageDataModule``.
    """

    num_classes = 10
    in_channels = 3
    # Of the 73,257 training images.
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)

    def __init__(self, extra: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra = extra

    def _splits(self, train: bool) -> list[str]:
        if not train:
            return ["test"]
        return ["train", "extra"] if self.extra else ["train"]

    def download_dataset(self) -> None:
        for split in self._splits(True) + self._splits(False):
            datasets.SVHN(self.data_dir, split=split, download=True)

    def download_sources(self) -> tuple[Path, list[str]]:
        splits = self._splits(True) + self._splits(False)
        return Path(self.data_dir), [datasets.SVHN.split_list[split][0] for split in splits]

    def make_dataset(self, train: bool, transform):
        parts = []
        for split in self._splits(train):
            try:
                parts.append(datasets.SVHN(self.data_dir, split=split, transform=transform))
            except RuntimeError as error:
                raise self.not_found(Path(self.data_dir) / datasets.SVHN.split_list[split][1], str(error)) from error
        return parts[0] if len(parts) == 1 else ConcatDataset(parts)
