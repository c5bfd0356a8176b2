"""CIFAR-10 and CIFAR-100 on torchvision's dataset classes (the python pickle versions)."""

from pathlib import Path

from torchvision import datasets

from lc_lightning.data.base import ImageDataModule


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
    crop_padding = 4
    horizontal_flip = True

    def download_dataset(self) -> None:
        for train in (True, False):
            self.dataset_class(self.data_dir, train=train, download=True)

    def download_sources(self) -> tuple[Path, list[str]]:
        return Path(self.data_dir), [self.dataset_class.url]

    def make_dataset(self, train: bool, transform):
        try:
            return self.dataset_class(self.data_dir, train=train, transform=transform)
        except RuntimeError as error:
            raise self.not_found(Path(self.data_dir) / self.dataset_class.base_folder, str(error)) from error


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 50,000 train / 10,000 test RGB images of 32x32, 100 (fine) classes.

    Reads ``<data_dir>/cifar-100-python``, the layout torchvision downloads; the labels are
    the 100 fine classes. Same augmentation as CIFAR-10.
    """

    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    dataset_class = datasets.CIFAR100
