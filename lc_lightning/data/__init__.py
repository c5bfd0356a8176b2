"""LightningDataModules, one per dataset, on the shared ``ImageDataModule`` base."""

from lc_lightning.data.base import ImageDataModule
from lc_lightning.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from lc_lightning.data.fashion_mnist import FashionMNISTDataModule
from lc_lightning.data.imagenet import ImageNetDataModule
from lc_lightning.data.svhn import SVHNDataModule

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageNetDataModule",
    "SVHNDataModule",
]
