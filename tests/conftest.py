import os
import subprocess
import sys
from pathlib import Path

import dataset_files
import pytest
import torch
import yaml
from torchvision import datasets

from lc_lightning.cli import main

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"
needs_fashion_mnist = pytest.mark.skipif(
    not Path(FASHION_MNIST_DEBIAN).is_dir(), reason="apt-get install dataset-fashion-mnist (.ci/run installs it)"
)
"""Marks a test that reads Debian's real Fashion-MNIST files."""
CONFIGS = Path(__file__).resolve().parent.parent / "configs"
CUDA_TEST_DEVICE = os.environ.get("LC_TEST_DEVICE", "cuda")
"""The device the ``cuda`` tests run on: a CUDA GPU, or with LC_TEST_DEVICE=cpu the CPU (the GPU
acceptance's --dry-run runs them so before any GPU is at hand)."""


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``cuda`` tests where they would need a GPU and there is none."""
    if CUDA_TEST_DEVICE == "cuda" and not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (LC_TEST_DEVICE=cpu runs it on the CPU)")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


def config_args(path: Path) -> list[str]:
    """The ``--config``/``--data`` arguments that use the config file at ``path`` as README.md says.

    An experiment in a folder with a ``base.yaml`` comes after that base; a trainer preset
    after ``cifar10_e32.yaml``; a data piece (the value of ``data``) is given to ``--data``
    and a callbacks piece to ``--trainer.callbacks``, an optimizer piece to ``--model.optimizer``
    (with folded LC-Blocks), all for Table 1's CIFAR-10 LC frozen.
    """
    relative = path.relative_to(CONFIGS)
    table1_cell = ["--config", str(CONFIGS / "table1" / "base.yaml")]
    table1_cell += ["--config", str(CONFIGS / "table1" / "cifar10_lc_frozen.yaml")]
    if relative.parts[0] == "trainer":
        return ["--config", str(CONFIGS / "cifar10_e32.yaml"), "--config", str(path)]
    if relative.parts[0] == "data":
        return [*table1_cell, "--data", str(path)]
    if relative.parts[0] == "callbacks":
        return [*table1_cell, "--trainer.callbacks", str(path)]
    if relative.parts[0] == "optimizers":
        return [*table1_cell, "--model.network.init_args.lc_form=folded", "--model.optimizer", str(path)]
    base = path.parent / "base.yaml"
    if base.is_file() and path != base:
        return ["--config", str(base), "--config", str(path)]
    return ["--config", str(path)]


def run_lc_train(*args: str) -> subprocess.CompletedProcess:
    """Run the installed ``lc-train`` console script with ``args``; its output is captured."""
    command = [str(Path(sys.executable).parent / "lc-train"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def printed_config(capsys, *args: str) -> dict:
    """The configuration ``lc-train fit ARGS --print_config`` prints, as a dict."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def _tiny_cifar(tmp_path, monkeypatch, write, dataset_class):
    root = tmp_path / "cifar"
    written = write(root)
    dataset_files.register_checksums(monkeypatch, dataset_class, written["md5"])
    return root, written


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in the real pickle format under tmp_path/cifar; returns (root, arrays)."""
    return _tiny_cifar(tmp_path, monkeypatch, dataset_files.write_cifar10, datasets.CIFAR10)


@pytest.fixture
def tiny_cifar100(tmp_path, monkeypatch):
    """A tiny CIFAR-100 in the real pickle format under tmp_path/cifar; returns (root, arrays)."""
    return _tiny_cifar(tmp_path, monkeypatch, dataset_files.write_cifar100, datasets.CIFAR100)


@pytest.fixture
def tiny_svhn(tmp_path, monkeypatch):
    """Tiny SVHN train/test/extra .mat files under tmp_path/svhn; returns (root, arrays)."""
    root = tmp_path / "svhn"
    written = dataset_files.write_svhn(root, {"train": 30, "test": 20, "extra": 10})
    dataset_files.register_svhn_checksums(monkeypatch, written["md5"])
    return root, written


@pytest.fixture
def tiny_imagenet(tmp_path):
    """A tiny ImageNet folder tree of JPEGs (3 classes) under tmp_path/imagenet; returns (root, wnids)."""
    root = tmp_path / "imagenet"
    return root, dataset_files.write_imagenet(root)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Unpacked Fashion-MNIST goes to a cache shared by the session's tests, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
