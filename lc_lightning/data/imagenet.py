"""ImageNet (ILSVRC-2012) from the standard folder tree, read by torchvision's ImageFolder."""

from pathlib import Path

from PIL import Image
from torchvision import datasets, transforms

from lc_lightning.data.base import ImageDataModule
from lc_lightning.errors import CorruptImageError, DatasetLayoutError, DatasetNotFoundError, InvalidArgumentError

PREPARE_HINT = "see 'Preparing ImageNet' in docs/datasets.md"


def load_rgb_image(path: str) -> Image.Image:
    """The image file at ``path`` as an RGB image (ImageNet's few grey and CMYK JPEGs converted).

    Raises CorruptImageError naming the file if it cannot be decoded (truncated, not an image).
    """
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as error:
        raise CorruptImageError(f"cannot decode image {path} ({error}); replace or delete the file") from error


class ImageNetDataModule(ImageDataModule):
    """ImageNet: 1.28 M train / 50,000 validation RGB images, 1000 classes, at 224x224.

    Reads ``<data_dir>/train/<wnid>/*.JPEG`` and ``<data_dir>/val/<wnid>/*.JPEG`` (one folder
    per class, the same class folders in both; torchvision's ImageFolder, so any image format
    PIL reads). Training: RandomResizedCrop(224) and horizontal flip; evaluation: Resize(256)
    and CenterCrop(224). ImageNet cannot be downloaded automatically (``download`` must stay
    false); docs/datasets.md says how to prepare the folders. The layout is checked before training:
    a missing folder, a different number of class folders, class folders that differ between
    train/ and val/, an empty class folder or images lying directly in train/ or val/ each
    stop the run with a message saying what to fix; an image that cannot be decoded stops it
    with the file's name. With ``num_workers=None`` each training process gets the CPU cores
    it can use, less one, as DataLoader workers (see ``ImageDataModule``); workers stay alive
    between epochs and batches go to pinned memory when training on GPUs.

    Args:
        num_classes: the number of class folders expected (1000; fewer for a subset).
        **kwargs: those of ``ImageDataModule``.
    """

    in_channels = 3
    mean = (0.485, 0.456, 0.406)
    std = (0.229, 0.224, 0.225)

    def __init__(self, num_classes: int = 1000, **kwargs) -> None:
        super().__init__(**kwargs)
        if num_classes < 2:
            raise InvalidArgumentError(f"num_classes must be >= 2, got {num_classes}")
        if self.loader == "device":
            raise InvalidArgumentError(
                "ImageNetDataModule: loader 'device' holds a whole split on the GPU and is for the 32x32 "
                "datasets; ImageNet needs --data.loader=torch"
            )
        self.num_classes = num_classes

    def train_transform(self) -> transforms.Compose:
        return transforms.Compose(
            [transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()]
        )

    def val_transform(self) -> transforms.Compose:
        return transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])

    def download_dataset(self) -> None:
        raise InvalidArgumentError(
            "ImageNet cannot be downloaded automatically (it needs an account at image-net.org); "
            f"prepare it under --data.data_dir ({PREPARE_HINT}) and pass --data.download=false"
        )

    def _class_folders(self, split: str) -> list[str]:
        """The class folder names of ``<data_dir>/<split>``, checked against the expected layout."""
        folder = Path(self.data_dir).resolve() / split
        if not folder.is_dir():
            raise DatasetNotFoundError(
                f"ImageNetDataModule: no folder {folder}; ImageNet must be laid out as "
                f"{folder.parent}/train/<wnid>/*.JPEG and {folder.parent}/val/<wnid>/*.JPEG ({PREPARE_HINT})"
            )
        entries = list(folder.iterdir())
        classes = sorted(entry.name for entry in entries if entry.is_dir())
        loose = [entry.name for entry in entries if entry.is_file()]
        if loose:
            raise DatasetLayoutError(
                f"ImageNetDataModule: {folder} holds {len(loose)} files directly (e.g. {loose[0]}); every image "
                f"must be in a class folder {folder}/<wnid>/ ({PREPARE_HINT})"
            )
        if len(classes) != self.num_classes:
            raise DatasetLayoutError(
                f"ImageNetDataModule: {folder} has {len(classes)} class folders, expected {self.num_classes}; "
                f"pass --data.num_classes={len(classes)} if this is a subset of ImageNet"
            )
        return classes

    def make_dataset(self, train: bool, transform):
        train_classes = self._class_folders("train")
        if not train:
            differing = sorted(set(train_classes) ^ set(self._class_folders("val")))
            if differing:
                raise DatasetLayoutError(
                    f"ImageNetDataModule: train/ and val/ of {Path(self.data_dir).resolve()} need the same class "
                    f"folders, but {', '.join(differing[:3])} are in only one of them"
                )
        folder = Path(self.data_dir).resolve() / ("train" if train else "val")
        try:
            return datasets.ImageFolder(folder, transform=transform, loader=load_rgb_image)
        except FileNotFoundError as error:  # a class folder without images
            raise DatasetLayoutError(f"ImageNetDataModule: in {folder}: {error}") from error
