"""Fashion-MNIST on torchvision's dataset class, also from Debian's ``dataset-fashion-mnist``."""

import gzip
import os
import shutil
from pathlib import Path

from torchvision import datasets, transforms

from lc_lightning.data.base import ImageDataModule
from lc_lightning.errors import DatasetNotFoundError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "lc_lightning"


def _has_gzip_files(folder: Path) -> bool:
    return all((folder / f"{name}.gz").is_file() for name in FILES)


def _extract(source: Path, root: Path) -> None:
    """Unpack the four ``.gz`` files of ``source`` into ``root/FashionMNIST/raw`` (atomically each)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (raw / name).is_file():
            continue
        partial = raw / f"{name}.partial-{os.getpid()}"
        with gzip.open(source / f"{name}.gz", "rb") as packed, open(partial, "wb") as out:
            shutil.copyfileobj(packed, out)
        os.replace(partial, raw / name)


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST: 60,000 train / 10,000 test grey images, resized to 32x32, 10 classes.

    The data is looked up, in this order:
    1. ``<data_dir>/FashionMNIST/raw``, the layout torchvision downloads;
    2. the four ``*-ubyte.gz`` files directly in ``data_dir`` (the layout of Debian's
       ``dataset-fashion-mnist`` package, or a copy of it);
    3. Debian's package at /usr/share/datasets/fashion-mnist;
    4. a download into ``data_dir`` if ``download`` is true.
    Gzip files (2, 3) are unpacked once into ``$XDG_CACHE_HOME/lc_lightning`` (default
    ``~/.cache/lc_lightning``). No augmentation, as in the paper.
    """

    num_classes = 10
    in_channels = 1
    # Of the training images after the resize to 32x32 (0.2860 / 0.3530 at 28x28).
    mean = (0.2856,)
    std = (0.3385,)

    def base_transforms(self) -> list:
        return [transforms.Resize(32)]

    def _root(self) -> Path | None:
        """The torchvision root holding ``FashionMNIST/raw``, unpacking gzip files if needed."""
        data_dir = Path(self.data_dir)
        if all((data_dir / "FashionMNIST" / "raw" / name).is_file() for name in FILES):
            return data_dir
        for source in (data_dir, DEBIAN_DIR):
            if _has_gzip_files(source):
                _extract(source, _cache_dir())
                return _cache_dir()
        return None

    def download_dataset(self) -> None:
        if self._root() is None:
            for train in (True, False):
                datasets.FashionMNIST(self.data_dir, train=train, download=True)

    def download_sources(self) -> tuple[Path, list[str]]:
        mirror = datasets.FashionMNIST.mirrors[0]
        return Path(self.data_dir) / "FashionMNIST" / "raw", [f"{mirror}{name}.gz" for name in FILES]

    def make_dataset(self, train: bool, transform):
        root = self._root()
        if root is None:
            raise DatasetNotFoundError(
                f"FashionMNISTDataModule: no dataset in {Path(self.data_dir).resolve()} (neither "
                f"FashionMNIST/raw/ nor the *-ubyte.gz files) nor in {DEBIAN_DIR}. Pass "
                f"--data.download=true to download it, or install Debian's package: "
                f"apt-get install dataset-fashion-mnist."
            )
        return datasets.FashionMNIST(root, train=train, transform=transform)
