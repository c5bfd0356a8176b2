"""The tests' fixtures and hooks; what else they share is in the package helpers."""

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import torch
from helpers.data import register_svhn_checksums, tiny_cifar, write_imagenet, write_svhn
from helpers.devices import CUDA_TEST_DEVICE
from helpers.slurm import BINARIES, SCRIPT, SEARCH_PATH, SlurmCluster, without_slurm_job_variables
from torchvision import datasets


def pytest_collection_modifyitems(config, items) -> None:
    """Skip the ``cuda`` tests where they would need a GPU and there is none."""
    if CUDA_TEST_DEVICE == "cuda" and not torch.cuda.is_available():
        skip = pytest.mark.skip(reason="needs a CUDA GPU (LC_TEST_DEVICE=cpu runs it on the CPU)")
        for item in items:
            if "cuda" in item.keywords:
                item.add_marker(skip)


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in the real pickle format under tmp_path/cifar; returns (root, arrays)."""
    return tiny_cifar(tmp_path / "cifar", monkeypatch, datasets.CIFAR10)


@pytest.fixture
def tiny_cifar100(tmp_path, monkeypatch):
    """A tiny CIFAR-100 in the real pickle format under tmp_path/cifar; returns (root, arrays)."""
    return tiny_cifar(tmp_path / "cifar", monkeypatch, datasets.CIFAR100)


@pytest.fixture
def tiny_svhn(tmp_path, monkeypatch):
    """Tiny SVHN train/test/extra .mat files under tmp_path/svhn; returns (root, arrays)."""
    root = tmp_path / "svhn"
    written = write_svhn(root, {"train": 30, "test": 20, "extra": 10})
    register_svhn_checksums(monkeypatch, written["md5"])
    return root, written


@pytest.fixture
def tiny_imagenet(tmp_path):
    """A tiny ImageNet folder tree of JPEGs (3 classes) under tmp_path/imagenet; returns (root, wnids)."""
    root = tmp_path / "imagenet"
    return root, write_imagenet(root)


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Unpacked Fashion-MNIST goes to a cache shared by the session's tests, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[SlurmCluster]:
    """A two-node SLURM cluster (n1, n2) running for the whole session; see helpers.slurm."""
    missing = [binary for binary in BINARIES if shutil.which(binary, path=SEARCH_PATH) is None]
    if missing:
        pytest.skip(f"{' '.join(missing)} not installed: run scripts/slurm/local_cluster.sh install")
    directory = tmp_path_factory.mktemp("slurm")
    env = without_slurm_job_variables(dict(os.environ))
    try:
        started = subprocess.run(
            [str(SCRIPT), "start", str(directory)], env=env, capture_output=True, text=True, timeout=120
        )
        if started.returncode != 0:
            pytest.fail(f"local SLURM cluster did not start:\n{started.stderr}", pytrace=False)
        yield SlurmCluster(directory, {**env, "SLURM_CONF": str(directory / "slurm.conf")})
    finally:
        subprocess.run([str(SCRIPT), "stop", str(directory)], env=env, capture_output=True, timeout=120)
