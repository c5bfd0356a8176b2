"""Every DataModule gives the model its own dataset's class count, channels and normalisation.

The tiny dataset fixtures have random pixels, so the mean and std are compared with the statistics of the
real training sets as published (sources beside each); Fashion-MNIST's are computed from Debian's real
files in tests/test_data.py. What reaches the model is read from ImageClassifier as lc-train builds it.
"""

import pytest
import torch

from lc_lightning.cli import build_cli
from lc_lightning.nn import spatial_convs

# (DataModule, classes, channels, mean, std) of the training split, in [0, 1] per channel.
PUBLISHED = [
    # CIFAR-10: the per-channel statistics of all pixels of the 50,000 training images, e.g.
    # akamaster/pytorch_resnet_cifar10 issue #9 and kuangliu/pytorch-cifar issue #129 (not the often copied
    # std (0.2023, 0.1994, 0.2010), a mean of per-image stds).
    ("CIFAR10DataModule", 10, 3, (0.49139968, 0.48215841, 0.44653091), (0.24703223, 0.24348513, 0.26158784)),
    # CIFAR-100: the same statistics of its 50,000 training images (weiaicunzai/pytorch-cifar100,
    # CIFAR100_TRAIN_MEAN and CIFAR100_TRAIN_STD).
    ("CIFAR100DataModule", 100, 3, (0.50707516, 0.48654887, 0.44091784), (0.26733429, 0.25643846, 0.27615047)),
    # SVHN: of the 73,257 images of its train split (e.g. PatrickZH/DeepCore, deepcore/datasets/svhn.py).
    ("SVHNDataModule", 10, 3, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    # Fashion-MNIST: 0.2860 / 0.3530 at 28 x 28; resized to 32 x 32 as lc-train reads it, computed from the
    # training files by tests/test_data.py::test_fashion_mnist_from_the_debian_package.
    ("FashionMNISTDataModule", 10, 1, (0.2856,), (0.3385,)),
    # ImageNet: the statistics torchvision's pretrained models and references normalise with.
    ("ImageNetDataModule", 1000, 3, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
]


def built(data_class: str, tmp_path):
    """lc-train's CLI with the DataModule ``data_class`` and a tiny CIFAR-ResNet, instantiated, not run."""
    return build_cli(
        [
            f"--data=lc_lightning.data.{data_class}", f"--data.data_dir={tmp_path}", "--data.download=false",
            "--model.network=lc_lightning.models.CifarResNet", "--model.network.init_args.depth=8",
            "--model.network.init_args.width=4", "--trainer.accelerator=cpu", "--trainer.logger=false",
        ],
        run=False,
    )  # fmt: skip


def test_the_published_table_names_every_datamodule():
    from lc_lightning import data

    modules = {name for name in data.__all__ if name.endswith("DataModule") and name != "ImageDataModule"}
    assert {row[0] for row in PUBLISHED} == modules


@pytest.mark.parametrize(
    "data_class, classes, channels, mean, std", PUBLISHED, ids=[row[0].removesuffix("DataModule") for row in PUBLISHED]
)
def test_the_model_normalises_with_its_own_datasets_statistics_and_has_its_classes_and_channels(
    data_class, classes, channels, mean, std, tmp_path
):
    cli = built(data_class, tmp_path)
    data, model = cli.datamodule, cli.model
    # the DataModule's own constants (values rounded to 4 decimals)
    assert (data.num_classes, data.in_channels) == (classes, channels)
    assert data.mean == pytest.approx(mean, abs=1e-4) and data.std == pytest.approx(std, abs=1e-4)
    # what the model normalises with and is built for
    torch.testing.assert_close(model.mean.flatten(), torch.tensor(mean), rtol=0, atol=1e-4)
    torch.testing.assert_close(model.std.flatten(), torch.tensor(std), rtol=0, atol=1e-4)
    assert model.mean.shape == model.std.shape == (1, channels, 1, 1)
    _, stem = next(spatial_convs(model.network))
    assert stem.in_channels == channels and model.network.fc.out_features == classes
    assert (model.hparams.num_classes, model.hparams.in_channels) == (classes, channels)
    # and the network receives the images normalised with them
    model.eval()
    images = torch.rand(2, channels, 32, 32, generator=torch.Generator().manual_seed(0))
    normalised = (images - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(images), model.network(normalised), rtol=1e-3, atol=1e-4)
