"""LightningDataModules, one per dataset, on the shared ``ImageDataModule`` base."""

from lc_lightning.data.base import ImageDataModule
from lc_lightning.data.cifar import CIFAR10DataModule
from lc_lightning.data.fashion_mnist import FashionMNISTDataModule

__all__ = ["CIFAR10DataModule", "FashionMNISTDataModule", "ImageDataModule"]
