"""CIFAR-10 on torchvision's dataset class (the ``cifar-10-batches-py`` pickles)."""

from pathlib import Path

from torchvision import datasets, transforms

from lc_lightning.data.base import ImageDataModule
from lc_lightning.errors import DatasetNotFoundError


class CIFAR10DataModule(ImageDataModule):
    """CIFAR-10: 50,000 train / 10,000 test RGB images of 32x32, 10 classes.

    Reads ``<data_dir>/cifar-10-batches-py``, the layout torchvision downloads. Training
    augmentation: random crop 32 with padding 4 and horizontal flip.
    """

    num_classes = 10
    in_channels = 3
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    dataset_class = datasets.CIFAR10

    def train_transform(self) -> transforms.Compose:
        return transforms.Compose(
            [transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )

    def download_dataset(self) -> None:
        for train in (True, False):
            self.dataset_class(self.data_dir, train=train, download=True)

    def make_dataset(self, train: bool, transform):
        try:
            return self.dataset_class(self.data_dir, train=train, transform=transform)
        except RuntimeError as error:
            folder = self.dataset_class.base_folder
            path = Path(self.data_dir).resolve() / folder
            raise DatasetNotFoundError(
                f"{type(self).__name__}: no dataset at {path} ({error}). Pass --data.download=true "
                f"to download it, or --data.data_dir=DIR for a directory that contains {folder}/."
            ) from error
