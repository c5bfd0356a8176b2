"""The device loader: the torchvision path's samples and augmentation semantics, batched on the device."""

import numpy as np
import pytest
import torch
from helpers.cli import tiny_cifar_args, usage_error
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from helpers.loaders import cifar_modules, cpu_trainer, epoch_batches, window_offsets

from lc_lightning.cli import build_cli
from lc_lightning.data import CIFAR10DataModule, FashionMNISTDataModule, ImageNetDataModule
from lc_lightning.data.device import random_crop_flip
from lc_lightning.errors import InvalidArgumentError


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


def test_the_device_loader_gives_the_torchvision_paths_samples_augmented_alike(tiny_cifar10):
    root, written = tiny_cifar10
    torch_path, device_path = cifar_modules(root)
    originals = torch.cat([torch.from_numpy(pixels).view(-1, 3, 32, 32) for pixels, _ in written["train"]])
    labels = torch.tensor([label for _, batch_labels in written["train"] for label in batch_labels])
    torch_loader, device_loader = torch_path.train_dataloader(), device_path.train_dataloader()
    assert len(device_loader) == len(torch_loader) == 3
    for number in (0, 1):
        torch_batches, device_batches = epoch_batches(torch_loader, number), epoch_batches(device_loader, number)
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
    first, again = epoch_batches(data.train_dataloader(), 0), epoch_batches(data.train_dataloader(), 0)
    other_epoch = epoch_batches(data.train_dataloader(), 1)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0][0], other_epoch[0][0])
    monkeypatch.setenv("PL_GLOBAL_SEED", "4")
    assert not torch.equal(epoch_batches(data.train_dataloader(), 0)[0][0], first[0][0])


def test_overfit_batches_gets_the_same_plain_batches_every_epoch(tiny_cifar10):
    root, _ = tiny_cifar10
    _, data = cifar_modules(root)
    data.trainer = cpu_trainer(overfit_batches=2)
    loader = data.train_dataloader()
    first, second = epoch_batches(loader, 0), epoch_batches(loader, 1)
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
    batches = zip(epoch_batches(torch_loader, 2), epoch_batches(device_loader, 2), strict=True)
    for (x, y), (x_device, y_device) in batches:
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
    err = usage_error(capsys, "fit", *tiny_cifar_args(root, "--data.loader=gpu"), "--print_config")
    assert "loader" in err and "device" in err
