"""Tiny datasets written in the exact on-disk formats torchvision reads."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
from torchvision import datasets


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_cifar10(root: Path, train_per_batch: int = 8, test: int = 10, seed: int = 0) -> dict:
    """Write ``root/cifar-10-batches-py`` (5 train batches, a test batch, ``batches.meta``).

    Pixels are random uint8 in the pickles' row layout (N, 3072: R plane, G plane, B plane);
    labels cycle through 0..9. Returns the arrays written, for comparison, and the md5 sums
    of the files, which ``datasets.CIFAR10`` checks (see ``register_cifar10_checksums``).
    """
    rng = np.random.default_rng(seed)
    folder = root / datasets.CIFAR10.base_folder
    folder.mkdir(parents=True)
    written = {"train": [], "test": [], "md5": {}}
    names = [(f"data_batch_{i}", "train", train_per_batch) for i in range(1, 6)] + [("test_batch", "test", test)]
    offset = 0
    for name, split, size in names:
        data = rng.integers(0, 256, size=(size, 3072), dtype=np.uint8)
        labels = [(offset + i) % 10 for i in range(size)]
        offset += size
        entry = {"batch_label": name.encode(), "labels": labels, "data": data, "filenames": [b"x.png"] * size}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
        written[split].append((data, labels))
        written["md5"][name] = _md5(folder / name)
    meta = {"label_names": [f"class_{i}" for i in range(10)], "num_cases_per_batch": train_per_batch}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    written["md5"]["batches.meta"] = _md5(folder / "batches.meta")
    return written


def register_cifar10_checksums(monkeypatch, md5: dict) -> None:
    """Make torchvision's integrity check expect the tiny files' md5 sums instead of the real ones."""
    cls = datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[name, md5[name]] for name, _ in cls.train_list])
    monkeypatch.setattr(cls, "test_list", [[name, md5[name]] for name, _ in cls.test_list])
    monkeypatch.setattr(cls, "meta", {**cls.meta, "md5": md5[cls.meta["filename"]]})
