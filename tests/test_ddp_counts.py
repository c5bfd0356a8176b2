"""Under DDP, what lc-train logs is that of the whole data, as one process logs it.

Real 2-process runs (gloo on the CPU, Lightning's ``ddp_fork``: the processes are forks of this one, so they
read the tiny CIFAR-10 written here and need no imports of their own) against 1-process runs over the same
images: the global batch is the same (4 images per process x 2 = 8), the network has no BatchNorm, so both
runs train the same weights up to float rounding and must log the same values. The validation and test
split has an odd number of images (13: 7 + 6 over two processes). One fit and one test of each kind serve
every test of this file.
"""

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.data import register_checksums, write_cifar10
from helpers.loaders import cpu_trainer, epoch_batches, window_offsets
from helpers.runs import step_values
from lightning import Callback
from torch import nn
from torchvision import datasets

from lc_lightning.cli import build_cli
from lc_lightning.data import CIFAR10DataModule
from lc_lightning.run_directory import RunDirectory

TRAIN_IMAGES, EVAL_IMAGES = 40, 13
GLOBAL_BATCH = 8
EPOCHS = 2
EPSILON = 0.1  # FGSM: large enough to turn some right answers of the tiny network wrong
RELATIVE = 1e-6  # float rounding: the processes sum the gradients of half batches


class TinyNet(nn.Sequential):
    """conv 3x3, ReLU, global average pooling, linear: no BatchNorm, whose batch statistics would differ
    between a batch and its halves."""

    def __init__(self, num_classes: int, in_channels: int, width: int = 8) -> None:
        super().__init__(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(width, num_classes),
        )


class RecordBatches(Callback):
    """Each process saves the batches it trained on, validated and tested (not the sanity check's) as uint8
    images and labels: ``<directory>/<fit|test>_rank<r>.pt``, {"train"|"validate"|"test": {epoch: [(images,
    labels), ...]}}."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self.batches: dict[str, dict[int, list]] = {}

    def _keep(self, trainer, kind: str, batch) -> None:
        if not trainer.sanity_checking:
            images, labels = batch
            uint8 = (images * 255).round().to(torch.uint8)
            self.batches.setdefault(kind, {}).setdefault(trainer.current_epoch, []).append((uint8.cpu(), labels.cpu()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._keep(trainer, "train", batch)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(trainer, "validate", batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._keep(trainer, "test", batch)

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.batches, self.directory / f"{trainer.state.fn.value}_rank{trainer.global_rank}.pt")


def as_images(split: list[tuple[np.ndarray, list[int]]]) -> torch.Tensor:
    """The (N, 3, 32, 32) uint8 images of a split write_cifar10 wrote."""
    return torch.cat([torch.from_numpy(data).view(-1, 3, 32, 32) for data, _ in split])


@pytest.fixture(scope="module")
def cifar(tmp_path_factory):
    """(root, written) of a CIFAR-10 the tiny network learns (write_cifar10), torchvision's integrity check
    expecting its files; ``written`` holds the "train" and "test" images as (N, 3, 32, 32) uint8 tensors."""
    root = tmp_path_factory.mktemp("learnable_cifar")
    written = write_cifar10(root, train_per_batch=TRAIN_IMAGES // 5, test=EVAL_IMAGES, learnable=True)
    with pytest.MonkeyPatch.context() as monkeypatch:
        register_checksums(monkeypatch, datasets.CIFAR10, written["md5"])
        yield root, {split: as_images(written[split]) for split in ("train", "test")}


def lc_train_args(root: Path, devices: int, loader: str, records: Path) -> list[str]:
    """A fit on ``devices`` processes of the global batch, logging FGSM and recording its batches."""
    strategy = "ddp_fork" if devices > 1 else "auto"
    return [
        "--data=lc_lightning.data.CIFAR10DataModule", f"--data.data_dir={root}", "--data.num_workers=0",
        f"--data.batch_size={GLOBAL_BATCH // devices}", f"--data.loader={loader}",
        "--model.network=test_ddp_counts.TinyNet", "--model.optimizer.lr=0.1",
        "--trainer.accelerator=cpu", f"--trainer.devices={devices}", f"--trainer.strategy={strategy}",
        f"--trainer.max_epochs={EPOCHS}", "--trainer.log_every_n_steps=1", "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false", f"--trainer.logger.init_args.name={loader}_{devices}",
        f"--trainer.callbacks+={{class_path: lc_lightning.callbacks.FGSMAccuracy, init_args: {{epsilon: {EPSILON}}}}}",
        f"--trainer.callbacks+={{class_path: test_ddp_counts.RecordBatches, init_args: {{directory: {records}}}}}",
    ]  # fmt: skip


def fit_and_test(root: Path, devices: int, loader: str, directory: Path) -> tuple[Path, Path]:
    """lc-train fit, then lc-train test of its last checkpoint, on ``devices`` processes in ``directory``;
    returns the run's directory and the one its batches are recorded in."""
    records = directory / f"records_{loader}_{devices}"
    run = directory / "logs" / f"{loader}_{devices}" / "version_0"
    strategy = "ddp_fork" if devices > 1 else "auto"
    test = ["test", f"--ckpt_path={run / 'checkpoints' / 'last.ckpt'}", f"--trainer.devices={devices}"]
    if devices > 1 and torch.cuda.is_initialized():
        pytest.skip("Lightning forks no processes from one in which CUDA is initialised: run this file on its own")
    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(directory)
        # A fork that runs more than one OpenMP thread after this process ran several hangs (GNU libgomp): the
        # forks inherit one thread, which Lightning leaves them where OMP_NUM_THREADS is set.
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        torch.set_num_threads(1)
        try:
            build_cli(["fit", *lc_train_args(root, devices, loader, records)])
            build_cli([*test, f"--trainer.strategy={strategy}"])
        finally:
            torch.set_num_threads(threads)
    return run, records


@pytest.fixture(scope="module")
def torch_loader_runs(cifar, tmp_path_factory) -> dict[int, tuple[Path, Path]]:
    """By number of processes (1, 2): fit_and_test with the torchvision loader."""
    root, _ = cifar
    directory = tmp_path_factory.mktemp("torch_loader_runs")
    return {devices: fit_and_test(root, devices, "torch", directory) for devices in (1, 2)}


def status_metrics(run: Path) -> dict[str, float]:
    return RunDirectory(run).status().metrics


def assert_same_values(values: dict, expected: dict) -> None:
    assert values.keys() == expected.keys()
    for name, value in expected.items():
        assert values[name] == pytest.approx(value, rel=RELATIVE), name


def test_training_logs_the_loss_and_accuracy_of_the_global_batch(torch_loader_runs):
    """Every step's train/loss and train/acc in TensorBoard, each epoch's, and the last ones in status.json
    are those one process logs for the same 8 images: the two processes' halves are combined (a process
    that logs its own half, as Lightning does without a sync, logs other values)."""
    (one, _), (two, _) = torch_loader_runs[1], torch_loader_runs[2]
    assert (RunDirectory(one).status().world_size, RunDirectory(two).status().world_size) == (1, 2)
    for tag in ("train/loss_step", "train/acc_step", "train/loss_epoch", "train/acc_epoch"):
        expected = step_values(one, tag)
        assert len(expected) == (EPOCHS * TRAIN_IMAGES // GLOBAL_BATCH if tag.endswith("step") else EPOCHS)
        assert_same_values(step_values(two, tag), expected)
    training = {name: value for name, value in status_metrics(one).items() if name.startswith("train/")}
    assert len(training) == 6
    assert_same_values({name: status_metrics(two)[name] for name in training}, training)


def test_validation_and_test_log_the_values_of_the_whole_split(torch_loader_runs):
    """val/* of each epoch (TensorBoard) and test/* (status.json of the test) on 2 processes are those of 1:
    the processes' counts and sums are combined, FGSM's robust count included, each image counted once."""
    (one, _), (two, _) = torch_loader_runs[1], torch_loader_runs[2]
    for tag in ("val/acc", "val/acc_top5", "val/loss", "val/fgsm_acc"):
        expected = step_values(one, tag)
        assert len(expected) == EPOCHS
        assert_same_values(step_values(two, tag), expected)
    expected = status_metrics(one / "test_0")
    assert set(expected) == {"test/acc", "test/acc_top5", "test/loss", "test/fgsm_acc"}
    assert 0 < expected["test/fgsm_acc"] < expected["test/acc"] < 1  # counts that a process's share would miss
    assert_same_values(status_metrics(two / "test_0"), expected)
    assert_same_values(status_metrics(two), status_metrics(one))  # the fit's last values, lr and val/* included


def evaluated_images(records: Path, split: torch.Tensor) -> dict[tuple[str, int], list[int]]:
    """By (validate or test, epoch): the indices in ``split`` (uint8 images) of the images the 2 processes
    evaluated, sorted (-1 for an image not in it)."""
    index = {image.numpy().tobytes(): i for i, image in enumerate(split)}
    seen = defaultdict(list)
    for stage in ("fit", "test"):
        for rank in (0, 1):
            saved = torch.load(records / f"{stage}_rank{rank}.pt", weights_only=False)
            for kind in ("validate", "test"):
                for epoch, batches in saved.get(kind, {}).items():
                    seen[kind, epoch] += [
                        index.get(image.numpy().tobytes(), -1) for images, _ in batches for image in images
                    ]
    return {evaluation: sorted(indices) for evaluation, indices in seen.items()}


@pytest.fixture(scope="module")
def device_loader_run(cifar, tmp_path_factory) -> tuple[Path, Path]:
    """fit_and_test on 2 processes with the device-resident loader."""
    root, _ = cifar
    return fit_and_test(root, 2, "device", tmp_path_factory.mktemp("device_loader_run"))


@pytest.mark.parametrize("loader", ["torch", "device"])
def test_every_process_evaluates_its_share_and_the_split_is_evaluated_once(
    loader, cifar, torch_loader_runs, device_loader_run
):
    """Each validation and the test on 2 processes see every image of the 13 exactly once: no image left out,
    none repeated to even out the processes' shares (as Lightning's DistributedSampler does)."""
    _, written = cifar
    _, records = torch_loader_runs[2] if loader == "torch" else device_loader_run
    seen = evaluated_images(records, written["test"])
    assert sorted(seen) == [("test", 0)] + [("validate", epoch) for epoch in range(EPOCHS)]
    for evaluation, indices in seen.items():
        assert indices == list(range(EVAL_IMAGES)), evaluation


def test_the_device_loader_draws_other_augmentations_on_each_process_reproducibly(
    cifar, device_loader_run, monkeypatch
):
    """The crops and flips each process of the device-loader run trained on in its first epoch: those of a
    loader rebuilt here for that process (reproducible from the run's seed and the rank), and not the same
    draws on both processes (a loader seeded alike on every rank draws the same windows for its images)."""
    root, written = cifar
    _, records = device_loader_run
    monkeypatch.setenv("PL_GLOBAL_SEED", "0")  # the run's seed_everything
    windows = []
    for rank in (0, 1):
        trained = torch.load(records / f"fit_rank{rank}.pt", weights_only=False)["train"][0]
        data = CIFAR10DataModule(data_dir=str(root), batch_size=GLOBAL_BATCH // 2, loader="device")
        data.trainer = cpu_trainer(world_size=2, global_rank=rank)
        data.setup("fit")
        loader = data.train_dataloader()
        again = epoch_batches(loader, 0)
        assert len(again) == len(trained) == TRAIN_IMAGES // GLOBAL_BATCH
        for (images, labels), (x, y) in zip(trained, again, strict=True):
            assert torch.equal(images, (x * 255).round().to(torch.uint8)) and torch.equal(labels, y)
        originals = written["train"][list(loader.sampler)]
        windows.append(window_offsets(torch.cat([images for images, _ in trained]), originals, data.crop_padding))
    assert len(set(windows[0])) > 1 and windows[0] != windows[1]
