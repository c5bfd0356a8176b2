import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FASHION_MNIST_DEBIAN

from lc_lightning.data import CIFAR10DataModule, FashionMNISTDataModule, fashion_mnist
from lc_lightning.errors import DatasetNotFoundError, InvalidArgumentError


def test_cifar10_reads_the_pickles_pixel_for_pixel(tiny_cifar10):
    root, written = tiny_cifar10
    data = CIFAR10DataModule(data_dir=str(root), batch_size=4, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 40 and len(data.val_set) == 10
    test_pixels, test_labels = written["test"][0]
    for index in (0, 7):
        image, label = data.val_set[index]
        expected = torch.from_numpy(test_pixels[index].reshape(3, 32, 32).astype(np.float32) / 255)
        assert image.dtype == torch.float32 and image.shape == (3, 32, 32)
        torch.testing.assert_close(image, expected)
        assert label == test_labels[index]
    images, labels = next(iter(data.train_dataloader()))
    assert images.shape == (4, 3, 32, 32) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert labels.dtype == torch.int64 and set(labels.tolist()) <= set(range(10))


def test_cifar10_train_augmentation_crops_a_padded_shifted_window(tiny_cifar10):
    root, written = tiny_cifar10
    data = CIFAR10DataModule(data_dir=str(root), num_workers=0)
    data.setup("fit")
    torch.manual_seed(0)
    original = torch.from_numpy(written["train"][0][0][0].reshape(3, 32, 32).astype(np.float32) / 255)
    padded = torch.nn.functional.pad(original, (4, 4, 4, 4))
    windows = {
        (flip, dy, dx)
        for flip in (False, True)
        for dy in range(9)
        for dx in range(9)
        if torch.equal(data.train_set[0][0], (padded.flip(-1) if flip else padded)[:, dy : dy + 32, dx : dx + 32])
    }
    assert windows, "the augmented image is not a 32x32 window of the zero-padded (flipped) image"
    augmented = {data.train_set[0][0].sum().item() for _ in range(20)}
    assert len(augmented) > 1, "augmentation is not random"


def test_subsets_are_fixed_and_sized(tiny_cifar10):
    root, _ = tiny_cifar10
    first = CIFAR10DataModule(data_dir=str(root), train_subset=12, val_subset=5, num_workers=0)
    second = CIFAR10DataModule(data_dir=str(root), train_subset=12, val_subset=5, num_workers=0)
    for data in (first, second):
        data.setup("fit")
    assert len(first.train_set) == 12 and len(first.val_set) == 5
    assert first.train_set.indices == second.train_set.indices
    assert sorted(set(first.train_set.indices)) == sorted(first.train_set.indices)


def test_missing_cifar10_names_the_path_and_the_fix(tmp_path):
    data = CIFAR10DataModule(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match=r"nowhere/cifar-10-batches-py.*--data.download=true"):
        data.setup("fit")


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"num_workers": -1}, {"train_subset": 0}])
def test_invalid_loader_arguments_are_rejected(kwargs):
    with pytest.raises(InvalidArgumentError):
        CIFAR10DataModule(**kwargs)


needs_debian_fashion_mnist = pytest.mark.skipif(
    not Path(FASHION_MNIST_DEBIAN).is_dir(), reason="apt-get install dataset-fashion-mnist (.ci/run installs it)"
)


@needs_debian_fashion_mnist
def test_fashion_mnist_from_the_debian_package():
    data = FashionMNISTDataModule(data_dir=FASHION_MNIST_DEBIAN, batch_size=1000, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 60_000 and len(data.val_set) == 10_000
    image, label = data.val_set[0]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert np.bincount(data.val_set.targets.numpy()).tolist() == [1000] * 10
    assert np.bincount(data.train_set.targets.numpy()).tolist() == [6000] * 10
    # The mean/std the model normalises with are those of the (resized) training images.
    total, total_sq, count = 0.0, 0.0, 0
    for images, labels in data.train_dataloader():
        assert 0 <= images.min() and images.max() <= 1 and 0 <= labels.min() and labels.max() <= 9
        total += images.double().sum().item()
        total_sq += images.double().pow(2).sum().item()
        count += images.numel()
    mean = total / count
    std = (total_sq / count - mean**2) ** 0.5
    assert mean == pytest.approx(data.mean[0], abs=1e-4)
    assert std == pytest.approx(data.std[0], abs=1e-4)


@needs_debian_fashion_mnist
def test_fashion_mnist_from_a_copy_of_the_gzip_files(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(FASHION_MNIST_DEBIAN, copy)
    data = FashionMNISTDataModule(data_dir=str(copy), num_workers=0)
    data.setup("validate")
    reference = FashionMNISTDataModule(data_dir=FASHION_MNIST_DEBIAN, num_workers=0)
    reference.setup("validate")
    assert torch.equal(data.val_set.data, reference.val_set.data)
    assert torch.equal(data.val_set.targets, reference.val_set.targets)


@needs_debian_fashion_mnist
def test_fashion_mnist_in_torchvision_layout_is_used_in_place(tmp_path, monkeypatch):
    raw = tmp_path / "FashionMNIST" / "raw"
    fashion_mnist._extract(Path(FASHION_MNIST_DEBIAN), tmp_path)
    assert sorted(p.name for p in raw.iterdir()) == sorted(fashion_mnist.FILES)
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "unused-cache"))
    data = FashionMNISTDataModule(data_dir=str(tmp_path), num_workers=0)
    data.setup("validate")
    assert len(data.val_set) == 10_000
    assert not (tmp_path / "unused-cache").exists()


def test_missing_fashion_mnist_names_the_path_and_both_fixes(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    data = FashionMNISTDataModule(data_dir=str(tmp_path / "empty"))
    with pytest.raises(
        DatasetNotFoundError, match=r"empty.*--data.download=true.*apt-get install dataset-fashion-mnist"
    ):
        data.setup("fit")
