import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist

from lc_lightning.data import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    FashionMNISTDataModule,
    ImageNetDataModule,
    SVHNDataModule,
    fashion_mnist,
)
from lc_lightning.errors import CorruptImageError, DatasetLayoutError, DatasetNotFoundError, InvalidArgumentError


def assert_batches(data, shape: tuple[int, ...], num_classes: int) -> None:
    """One batch of each loader: float images in [0, 1] of ``shape``, int64 labels below num_classes."""
    for loader in (data.train_dataloader(), data.val_dataloader()):
        images, labels = next(iter(loader))
        assert images.dtype == torch.float32 and images.shape[1:] == shape
        assert 0 <= images.min() and images.max() <= 1
        assert labels.dtype == torch.int64 and 0 <= labels.min() and labels.max() < num_classes


def assert_pickled_images(dataset, pixels, labels, indices) -> None:
    """dataset[i] is row i of the pickles' pixels (R, G, B planes of 32x32) in [0, 1], with label i."""
    for index in indices:
        image, label = dataset[index]
        expected = torch.from_numpy(pixels[index].reshape(3, 32, 32).astype(np.float32) / 255)
        assert image.dtype == torch.float32
        torch.testing.assert_close(image, expected)
        assert label == labels[index]


def test_cifar10_reads_the_pickles_pixel_for_pixel(tiny_cifar10):
    root, written = tiny_cifar10
    data = CIFAR10DataModule(data_dir=str(root), batch_size=4, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 40 and len(data.val_set) == 10
    assert_pickled_images(data.val_set, *written["test"][0], indices=(0, 7))
    assert_batches(data, (3, 32, 32), 10)


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


@pytest.mark.parametrize(
    "data_class, missing",
    [
        (CIFAR10DataModule, "cifar-10-batches-py"),
        (CIFAR100DataModule, "cifar-100-python"),
        (SVHNDataModule, "train_32x32.mat"),
    ],
)
def test_a_missing_dataset_names_the_path_and_the_fix(data_class, missing, tmp_path):
    data = data_class(data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(DatasetNotFoundError, match=rf"nowhere/{missing}.*--data.download=true"):
        data.setup("fit")


def test_cifar100_reads_the_pickles_with_the_100_fine_labels(tiny_cifar100):
    root, written = tiny_cifar100
    data = CIFAR100DataModule(data_dir=str(root), batch_size=16, num_workers=0)
    data.setup("fit")
    assert data.num_classes == 100 and len(data.train_set) == 200 and len(data.val_set) == 100
    assert_pickled_images(data.val_set, *written["test"], indices=(0, 57))
    assert sorted(set(data.train_set.targets)) == list(range(100))
    assert_batches(data, (3, 32, 32), 100)


def test_svhn_reads_the_mat_files_and_maps_label_10_to_digit_0(tiny_svhn):
    root, written = tiny_svhn
    data = SVHNDataModule(data_dir=str(root), batch_size=8, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 30 and len(data.val_set) == 20
    images, file_labels = written["test"]
    for index in range(20):
        image, label = data.val_set[index]
        # X is (row, column, channel, image); the tensor is (channel, row, column).
        expected = torch.from_numpy(images[..., index].astype(np.float32) / 255).permute(2, 0, 1)
        torch.testing.assert_close(image, expected)
        assert label == file_labels[index, 0] % 10  # 1..9 stay, 10 is the digit 0
    assert sorted(data.train_set.labels.tolist()) == sorted([i % 10 for i in range(30)])
    assert_batches(data, (3, 32, 32), 10)


def test_svhn_extra_is_off_by_default_and_adds_the_extra_split(tiny_svhn):
    root, _ = tiny_svhn
    data = SVHNDataModule(data_dir=str(root), extra=True, num_workers=0)
    data.setup("fit")
    assert len(data.train_set) == 30 + 10 and len(data.val_set) == 20


def test_imagenet_reads_the_folder_tree_at_224(tiny_imagenet):
    root, wnids = tiny_imagenet
    data = ImageNetDataModule(data_dir=str(root), num_classes=3, batch_size=4, num_workers=0)
    data.setup("fit")
    assert data.train_set.classes == data.val_set.classes == wnids
    assert len(data.train_set) == 9 and len(data.val_set) == 6
    assert sorted(data.val_set.targets) == [0, 0, 1, 1, 2, 2]
    assert_batches(data, (3, 224, 224), 3)
    grey, _ = data.val_set[0]  # the first image of each class is a greyscale JPEG
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])
    # Evaluation: the deterministic Resize(256) + CenterCrop(224); training: random crops.
    assert torch.equal(data.val_set[3][0], data.val_set[3][0])
    assert len({data.train_set[4][0].sum().item() for _ in range(5)}) > 1


def test_imagenet_cannot_be_downloaded(tmp_path):
    with pytest.raises(InvalidArgumentError, match="cannot be downloaded"):
        ImageNetDataModule(data_dir=str(tmp_path), download=True).prepare_data()


def test_missing_imagenet_names_the_folder_and_the_layout(tmp_path):
    data = ImageNetDataModule(data_dir=str(tmp_path / "imagenet"))
    with pytest.raises(DatasetNotFoundError, match=r"no folder .*imagenet/train.*train/<wnid>/\*.JPEG"):
        data.setup("fit")


def test_imagenet_layout_mistakes_are_named(tiny_imagenet):
    root, wnids = tiny_imagenet
    with pytest.raises(DatasetLayoutError, match=r"has 3 class folders, expected 1000.*--data.num_classes=3"):
        ImageNetDataModule(data_dir=str(root)).setup("fit")
    # The raw validation archive unpacks into one flat folder of JPEGs.
    for image in (root / "val" / wnids[0]).iterdir():
        image.rename(root / "val" / image.name)
    with pytest.raises(DatasetLayoutError, match=r"val holds 2 files directly.*class folder"):
        ImageNetDataModule(data_dir=str(root), num_classes=3).setup("validate")
    (root / "val" / wnids[0]).rmdir()
    (root / "val" / "n09999999").mkdir()
    for image in root.glob("val/*.JPEG"):
        image.rename(root / "val" / "n09999999" / image.name)
    with pytest.raises(DatasetLayoutError, match=f"need the same class folders.*{wnids[0]}"):
        ImageNetDataModule(data_dir=str(root), num_classes=3).setup("validate")


def test_an_empty_imagenet_class_folder_is_named(tiny_imagenet):
    root, wnids = tiny_imagenet
    for image in (root / "train" / wnids[1]).iterdir():
        image.unlink()
    with pytest.raises(DatasetLayoutError, match=f"train: Found no valid file for the classes {wnids[1]}"):
        ImageNetDataModule(data_dir=str(root), num_classes=3).setup("fit")


def test_a_corrupt_jpeg_is_named_also_from_a_worker_process(tiny_imagenet):
    root, wnids = tiny_imagenet
    corrupt = root / "train" / wnids[2] / f"{wnids[2]}_train_1.JPEG"
    corrupt.write_bytes(corrupt.read_bytes()[:300])  # truncated
    data = ImageNetDataModule(data_dir=str(root), num_classes=3, batch_size=9, num_workers=1)
    data.setup("fit")
    with pytest.raises(CorruptImageError, match=f"cannot decode image {corrupt}"):
        next(iter(data.train_dataloader()))


def test_automatic_workers_share_the_cores_among_the_processes_of_a_node(monkeypatch):
    data = CIFAR10DataModule()
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.delenv("SLURM_CPUS_PER_TASK", raising=False)
    assert data.workers() == 15
    data.trainer = SimpleNamespace(num_devices=4)
    assert data.workers() == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "6")  # SLURM already gave this task its cores
    assert data.workers() == 5
    assert CIFAR10DataModule(num_workers=2).workers() == 2


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"num_workers": -1}, {"train_subset": 0}])
def test_invalid_loader_arguments_are_rejected(kwargs):
    with pytest.raises(InvalidArgumentError):
        CIFAR10DataModule(**kwargs)


@needs_fashion_mnist
@pytest.mark.slow
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


@needs_fashion_mnist
def test_fashion_mnist_from_a_copy_of_the_gzip_files(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(FASHION_MNIST_DEBIAN, copy)
    data = FashionMNISTDataModule(data_dir=str(copy), num_workers=0)
    data.setup("validate")
    reference = FashionMNISTDataModule(data_dir=FASHION_MNIST_DEBIAN, num_workers=0)
    reference.setup("validate")
    assert torch.equal(data.val_set.data, reference.val_set.data)
    assert torch.equal(data.val_set.targets, reference.val_set.targets)


@needs_fashion_mnist
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
