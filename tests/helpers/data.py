"""Datasets for the tests: tiny ones written in the exact on-disk formats torchvision reads, and where
Debian's real Fashion-MNIST files are."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image
from torchvision import datasets

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"
needs_fashion_mnist = pytest.mark.skipif(
    not Path(FASHION_MNIST_DEBIAN).is_dir(), reason="apt-get install dataset-fashion-mnist (.ci/run installs it)"
)
"""Marks a test that reads Debian's real Fashion-MNIST files."""
# Real ImageNet class folder names (WordNet ids); the tiny tree uses the first few.
IMAGENET_WNIDS = ("n01440764", "n01443537", "n01484850", "n01491361")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pickle(path: Path, entry: dict) -> str:
    path.write_bytes(pickle.dumps(entry, protocol=2))
    return _md5(path)


def write_cifar10(root: Path, train_per_batch: int = 8, test: int = 10, seed: int = 0, learnable: bool = False) -> dict:
    """Write ``root/cifar-10-batches-py`` (5 train batches, a test batch, ``batches.meta``).

    Pixels are random uint8 in the pickles' row layout (N, 3072: R plane, G plane, B plane);
    labels cycle through 0..9. With ``learnable``, a tiny network learns them in a few steps instead:
    random labels 0..7, whose three bits brighten the R, G and B planes of the noise. Returns the arrays
    written, for comparison, and the md5 sums of the files, which ``datasets.CIFAR10`` checks (see
    ``register_checksums``).
    """
    rng = np.random.default_rng(seed)
    folder = root / datasets.CIFAR10.base_folder
    folder.mkdir(parents=True)
    written = {"train": [], "test": [], "md5": {}}
    names = [(f"data_batch_{i}", "train", train_per_batch) for i in range(1, 6)] + [("test_batch", "test", test)]
    offset = 0
    for name, split, size in names:
        if learnable:
            labels = rng.integers(0, 8, size)
            bits = (labels[:, None, None] >> np.arange(3)[:, None]) & 1
            data = (rng.integers(0, 160, (size, 3, 1024)) + 90 * bits).reshape(size, 3072).astype(np.uint8)
            labels = labels.tolist()
        else:
            data = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
            labels = [(offset + i) % 10 for i in range(size)]
        offset += size
        entry = {"batch_label": name.encode(), "labels": labels, "data": data, "filenames": [b"x.png"] * size}
        written["md5"][name] = _pickle(folder / name, entry)
        written[split].append((data, labels))
    meta = {"label_names": [f"class_{i}" for i in range(10)], "num_cases_per_batch": train_per_batch}
    written["md5"]["batches.meta"] = _pickle(folder / "batches.meta", meta)
    return written


def write_cifar100(root: Path, train: int = 200, test: int = 100, seed: int = 0) -> dict:
    """Write ``root/cifar-100-python`` (``train``, ``test``, ``meta``), as ``write_cifar10`` does.

    Fine labels cycle through 0..99 (so every class occurs with ``train`` >= 100), coarse
    labels are fine // 5. Returns the arrays and md5 sums like ``write_cifar10``.
    """
    rng = np.random.default_rng(seed)
    folder = root / datasets.CIFAR100.base_folder
    folder.mkdir(parents=True)
    written = {"md5": {}}
    for split, size in (("train", train), ("test", test)):
        data = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
        fine = [i % 100 for i in range(size)]
        entry = {
            "batch_label": split.encode(), "data": data, "fine_labels": fine,
            "coarse_labels": [label // 5 for label in fine], "filenames": [b"x.png"] * size,
        }  # fmt: skip
        written["md5"][split] = _pickle(folder / split, entry)
        written[split] = (data, fine)
    meta = {"fine_label_names": [f"fine_{i}" for i in range(100)], "coarse_label_names": [f"c_{i}" for i in range(20)]}
    written["md5"]["meta"] = _pickle(folder / "meta", meta)
    return written


def register_checksums(monkeypatch, dataset_class, md5: dict) -> None:
    """Make torchvision's integrity check of a CIFAR class expect the tiny files' md5 sums."""
    monkeypatch.setattr(dataset_class, "train_list", [[name, md5[name]] for name, _ in dataset_class.train_list])
    monkeypatch.setattr(dataset_class, "test_list", [[name, md5[name]] for name, _ in dataset_class.test_list])
    monkeypatch.setattr(dataset_class, "meta", {**dataset_class.meta, "md5": md5[dataset_class.meta["filename"]]})


def tiny_cifar(root: Path, monkeypatch, dataset_class) -> tuple[Path, dict]:
    """Write a tiny ``datasets.CIFAR10`` or ``datasets.CIFAR100`` under ``root`` and make torchvision's
    integrity check expect its files (undone with ``monkeypatch``); returns (root, what was written)."""
    write = {datasets.CIFAR10: write_cifar10, datasets.CIFAR100: write_cifar100}[dataset_class]
    written = write(root)
    register_checksums(monkeypatch, dataset_class, written["md5"])
    return root, written


def write_svhn(root: Path, sizes: dict[str, int] | None = None, seed: int = 0) -> dict:
    """Write SVHN's ``<split>_32x32.mat`` files into ``root`` as the dataset ships them.

    Each holds ``X``, uint8 of shape (32, 32, 3, N) (row, column, channel, image), and ``y``,
    uint8 of shape (N, 1) with the labels 1..10, where 10 is the digit 0. Labels cycle
    through 1..10. Returns {split: (X, y)} and the md5 sums under "md5" (see
    ``register_svhn_checksums``).
    """
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    written = {"md5": {}}
    for split, size in (sizes or {"train": 30, "test": 20}).items():
        images = rng.integers(0, 256, size=(32, 32, 3, size), dtype=np.uint8)
        labels = (np.arange(size, dtype=np.uint8) % 10 + 1).reshape(size, 1)
        path = root / datasets.SVHN.split_list[split][1]
        scipy.io.savemat(path, {"X": images, "y": labels})
        written[split] = (images, labels)
        written["md5"][split] = _md5(path)
    return written


def register_svhn_checksums(monkeypatch, md5: dict) -> None:
    """Make torchvision's integrity check of SVHN expect the tiny files' md5 sums."""
    split_list = {
        split: [url, name, md5.get(split, real)] for split, (url, name, real) in datasets.SVHN.split_list.items()
    }
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)


def write_imagenet(root: Path, classes: int = 3, train_per_class: int = 3, val_per_class: int = 2, seed: int = 0):
    """Write ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` with random JPEGs.

    Images have varied sizes (as ImageNet's do, some smaller than the 224 crop) and the
    first image of every class is greyscale (ImageNet has some). Returns the wnids used.
    """
    rng = np.random.default_rng(seed)
    wnids = IMAGENET_WNIDS[:classes]
    for split, count in (("train", train_per_class), ("val", val_per_class)):
        for wnid in wnids:
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for index in range(count):
                height, width = int(rng.integers(100, 300)), int(rng.integers(100, 300))
                pixels = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
                image = Image.fromarray(pixels).convert("L" if index == 0 else "RGB")
                image.save(folder / f"{wnid}_{split}_{index}.JPEG", quality=90)
    return list(wnids)
