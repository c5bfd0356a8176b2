"""The device loader: the torchvision path's samples and augmentation semantics, batched on the device."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from test_faults import lc_train_error, tiny_cifar_args
from torch.nn import functional as F

from lc_lightning.cli import build_cli
from lc_lightning.data import CIFAR10DataModule, FashionMNISTDataModule, ImageNetDataModule
from lc_lightning.data.device import random_crop_flip
from lc_lightning.errors import InvalidArgumentError


def window_offsets(augmented: torch.Tensor, originals: torch.Tensor, padding: int) -> list[tuple[bool, int, int]]:
    """For each augmented (C, H, W) image, the (flipped, top, left) of the window of its zero-padded
    original it equals; fails if it equals none."""
    height, width = originals.shape[-2:]
    padded = F.pad(originals, (padding,) * 4)
    found = []
    for image, source in zip(augmented, padded, strict=True):
        matches = [
            (flipped, top, left)
            for flipped in (False, True)
            for top in range(2 * padding + 1)
            for left in range(2 * padding + 1)
            if torch.equal(image, (source.flip(-1) if flipped else source)[:, top : top + height, left : left + width])
        ]
        assert matches, "not a window of the zero-padded (flipped) original"
        found.append(matches[0])
    return found


def test_random_crop_flip_draws_every_padded_window_and_flips_half():
    images = torch.randint(0, 256, (2048, 3, 8, 8), dtype=torch.uint8)
    augmented = random_crop_flip(images, 2, True, torch.Generator().manual_seed(0))
    assert augmented.dtype == torch.uint8 and augmented.shape == images.shape
    offsets = window_offsets(augmented, images, 2)
    assert {(top, left) for _, top, left in offsets} == {(top, left) for top in range(5) for left in range(5)}
    flip_rate = np.mean([flipped for flipped, _, _ in offsets])
    assert 0.45 < flip_rate < 0.55
    again = random_crop_flip(images, 2, True, torch.Generator().manual_seed(0))
    assert torch.equal(again, augmented)
    assert not torch.equal(random_crop_flip(images, 2, True, torch.Generator().manual_seed(1)), augmented)
    assert torch.equal(random_crop_flip(images, 0, False, torch.Generator()), images)


def cifar_modules(root, **kwargs) -> tuple[CIFAR10DataModule, CIFAR10DataModule]:
    """The torchvision and the device path over the same files, set up for fit."""
    modules = (
        CIFAR10DataModule(data_dir=str(root), batch_size=16, num_workers=0, **kwargs),
        CIFAR10DataModule(data_dir=str(root), batch_size=16, loader="device", **kwargs),
    )
    for data in modules:
        data.setup("fit")
    return modules


def epoch(loader, number: int) -> list:
    loader.sampler.set_epoch(number)  # as Lightning does before each epoch
    return list(loader)


def test_the_device_loader_gives_the_torchvision_paths_samples_augmented_alike(tiny_cifar10):
    root, written = tiny_cifar10
    torch_path, device_path = cifar_modules(root)
    originals = torch.cat([torch.from_numpy(pixels).view(-1, 3, 32, 32) for pixels, _ in written["train"]])
    labels = torch.tensor([label for _, batch_labels in written["train"] for label in batch_labels])
    torch_loader, device_loader = torch_path.train_dataloader(), device_path.train_dataloader()
    assert len(device_loader) == len(torch_loader) == 3
    for number in (0, 1):
        torch_batches, device_batches = epoch(torch_loader, number), epoch(device_loader, number)
        order = [index for _, index in torch_loader.sampler]  # the same permutation on both paths
        assert list(device_loader.sampler) == order
        assert [len(y) for _, y in device_batches] == [len(y) for _, y in torch_batches] == [16, 16, 8]
        device_images = torch.cat([x for x, _ in device_batches])
        assert device_images.dtype == torch.float32
        assert torch.equal(torch.cat([y for _, y in device_batches]), labels[order])
        assert torch.equal(torch.cat([y for _, y in torch_batches]), labels[order])
        # both are windows of the zero-padded originals, flipped or not
        window_offsets((device_images * 255).round().to(torch.uint8), originals[order], 4)
        torch_images = torch.cat([x for x, _ in torch_batches])
        window_offsets((torch_images * 255).round().to(torch.uint8), originals[order], 4)
    # validation: no augmentation, the same batches to the bit
    for (x, y), (x_device, y_device) in zip(torch_path.val_dataloader(), device_path.val_dataloader(), strict=True):
        assert torch.equal(x_device, x) and torch.equal(y_device, y)


def test_the_device_loader_repeats_itself_for_a_seed_and_epoch_only(tiny_cifar10, monkeypatch):
    root, _ = tiny_cifar10
    _, data = cifar_modules(root)
    monkeypatch.setenv("PL_GLOBAL_SEED", "3")
    first, again = epoch(data.train_dataloader(), 0), epoch(data.train_dataloader(), 0)
    other_epoch = epoch(data.train_dataloader(), 1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], other_epoch[0][0])
    monkeypatch.setenv("PL_GLOBAL_SEED", "4")
    assert not torch.equal(epoch(data.train_dataloader(), 0)[0][0], first[0][0])


def cpu_trainer(world_size: int = 1, global_rank: int = 0, overfit_batches: float = 0) -> SimpleNamespace:
    """What the DataModule reads of its trainer."""
    strategy = SimpleNamespace(root_device=torch.device("cpu"))
    return SimpleNamespace(
        world_size=world_size, global_rank=global_rank, overfit_batches=overfit_batches, strategy=strategy
    )


def test_overfit_batches_gets_the_same_plain_batches_every_epoch(tiny_cifar10):
    root, _ = tiny_cifar10
    _, data = cifar_modules(root)
    data.trainer = cpu_trainer(overfit_batches=2)
    loader = data.train_dataloader()
    first, second = epoch(loader, 0), epoch(loader, 1)
    for (x, y), (x_again, y_again) in zip(first, second, strict=True):
        assert torch.equal(x, x_again) and torch.equal(y, y_again)
    # in file order and without augmentation: the training images as they are
    originals = CIFAR10DataModule(data_dir=str(root), batch_size=16, loader="device")
    originals.setup("fit")
    images, labels = originals.train_set
    assert torch.equal(first[0][0], images[:16].float() / 255) and torch.equal(first[0][1], labels[:16])


def test_ddp_ranks_get_disjoint_shards_that_cover_the_split(tiny_cifar10):
    root, _ = tiny_cifar10
    _, data = cifar_modules(root)
    shards = []
    for rank in (0, 1):
        data.trainer = cpu_trainer(world_size=2, global_rank=rank)
        loader = data.train_dataloader()
        loader.sampler.set_epoch(5)
        shards.append(list(loader.sampler))
        assert sum(len(y) for _, y in loader) == 20
    assert not set(shards[0]) & set(shards[1])
    assert sorted(shards[0] + shards[1]) == list(range(40))


@needs_fashion_mnist
def test_fashion_mnist_on_the_device_equals_the_torchvision_path_resize_included():
    paths = [
        FashionMNISTDataModule(
            data_dir=FASHION_MNIST_DEBIAN, train_subset=64, val_subset=64, batch_size=32, num_workers=0, loader=loader
        )
        for loader in ("torch", "device")
    ]
    for data in paths:
        data.setup("fit")
    torch_loader, device_loader = (data.train_dataloader() for data in paths)
    for (x, y), (x_device, y_device) in zip(epoch(torch_loader, 2), epoch(device_loader, 2), strict=True):
        assert x_device.shape[1:] == (1, 32, 32)
        assert torch.equal(x_device, x) and torch.equal(y_device, y)  # no augmentation: identical


def test_lc_train_trains_with_the_device_loader_and_refuses_it_for_imagenet(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    cli = build_cli(["fit", *tiny_cifar_args(root, "--data.loader=device", "--trainer.max_epochs=1")])
    assert cli.trainer.global_step == 5 and torch.isfinite(cli.trainer.callback_metrics["val/loss"])
    with pytest.raises(InvalidArgumentError, match="ImageNet needs --data.loader=torch"):
        ImageNetDataModule(data_dir=str(tmp_path), loader="device")
    err = lc_train_error(capsys, "fit", *tiny_cifar_args(root, "--data.loader=gpu"), "--print_config")
    assert "loader" in err and "device" in err
