import pytest
from dataset_files import register_cifar10_checksums, write_cifar10

FASHION_MNIST_DEBIAN = "/usr/share/datasets/fashion-mnist"


@pytest.fixture
def tiny_cifar10(tmp_path, monkeypatch):
    """A tiny CIFAR-10 in the real pickle format under tmp_path/cifar; returns (root, arrays)."""
    root = tmp_path / "cifar"
    written = write_cifar10(root)
    register_cifar10_checksums(monkeypatch, written["md5"])
    return root, written


@pytest.fixture(autouse=True)
def isolated_cache(tmp_path_factory, monkeypatch):
    """Unpacked Fashion-MNIST goes to a cache shared by the session's tests, not ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "cache"))
