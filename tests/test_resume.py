"""Exact resume: training data follow from (seed, epoch, image), and a run resumes from its directory."""

import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from test_faults import lc_train_error, tiny_cifar_args

from lc_lightning.cli import build_cli, checkpoint_to_resume
from lc_lightning.data import CIFAR10DataModule
from lc_lightning.errors import InvalidArgumentError


def epoch_batches(data: CIFAR10DataModule, epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    loader = data.train_dataloader()
    loader.sampler.set_epoch(epoch)  # as Lightning does before each epoch
    return list(loader)


def assert_same_batches(first, second) -> None:
    assert len(first) == len(second)
    for (images, labels), (other_images, other_labels) in zip(first, second, strict=True):
        assert torch.equal(images, other_images) and torch.equal(labels, other_labels)


def test_training_batches_depend_only_on_the_seed_the_epoch_and_the_image(tiny_cifar10, monkeypatch):
    root, _ = tiny_cifar10
    monkeypatch.setenv("PL_GLOBAL_SEED", "7")
    loaders = {}
    for workers in (0, 2):
        data = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=workers)
        data.setup("fit")
        loaders[workers] = data
    in_process = [epoch_batches(loaders[0], epoch) for epoch in (0, 1)]
    # Two persistent workers, epochs read out of order: the same batches.
    for epoch in (1, 0):
        assert_same_batches(epoch_batches(loaders[2], epoch), in_process[epoch])
    # Another epoch: another order and other crops and flips of the same images.
    first_images = torch.cat([images for images, _ in in_process[0]])
    second_images = torch.cat([images for images, _ in in_process[1]])
    first_labels = torch.cat([labels for _, labels in in_process[0]])
    second_labels = torch.cat([labels for _, labels in in_process[1]])
    assert not torch.equal(first_labels, second_labels)
    assert sorted(first_labels.tolist()) == sorted(second_labels.tolist())
    same_image_first = first_images[first_labels == 3]
    same_image_second = second_images[second_labels == 3]
    assert not torch.equal(same_image_first, same_image_second)
    # Another seed: another order.
    monkeypatch.setenv("PL_GLOBAL_SEED", "8")
    other_seed = torch.cat([labels for _, labels in epoch_batches(loaders[0], 0)])
    assert not torch.equal(other_seed, first_labels)


def test_reading_an_image_leaves_the_callers_random_stream_alone(tiny_cifar10):
    root, _ = tiny_cifar10
    data = CIFAR10DataModule(data_dir=str(root), num_workers=0)
    data.setup("fit")
    dataset = data.train_dataloader().dataset
    torch.manual_seed(123)
    state = torch.get_rng_state()
    image, _ = dataset[(4, 17)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(dataset[(4, 17)][0], image)
    assert not torch.equal(dataset[(5, 17)][0], image)


@pytest.mark.parametrize("loader", ["torch", "device"])
def test_a_run_stopped_at_an_epoch_boundary_resumes_from_its_directory_bitwise(
    loader, tiny_cifar10, tmp_path, monkeypatch
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(root, "--trainer.max_epochs=3", "--data.num_workers=2", f"--data.loader={loader}")
    build_cli(["fit", *args])  # uninterrupted: logs/cifar10_e32/version_0
    stop = "--trainer.callbacks+={class_path: interruptions.StopAfterEpoch, init_args: {epoch: 1}}"
    build_cli(["fit", *args, stop])  # stopped after 2 of 3 epochs: version_1
    run = tmp_path / "logs" / "cifar10_e32" / "version_1"
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert stopped["epoch"] == 1
    resumed = build_cli(["fit", "--config", str(run / "config.yaml"), "--ckpt_path=last"])
    assert Path(resumed.trainer.log_dir).resolve() == run
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0", "version_1"]
    uninterrupted = torch.load(run.parent / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    final = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert final["global_step"] == uninterrupted["global_step"] == 3 * 5
    for name, value in uninterrupted["state_dict"].items():
        assert torch.equal(final["state_dict"][name], value), name


def test_a_fit_never_overwrites_an_earlier_run(tmp_path, monkeypatch):
    for name in ("SLURM_NTASKS", "SLURM_RESTART_COUNT"):
        monkeypatch.delenv(name, raising=False)
    run = tmp_path / "version_0"
    assert checkpoint_to_resume(run) is None  # a new run
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match=r"already holds the checkpoints of a run. Resume it with"):
        checkpoint_to_resume(run)
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")  # requeued or preempted without a requeue checkpoint
    assert checkpoint_to_resume(run) == "last"
    for name, value in {"SLURM_NTASKS": "1", "SLURM_JOB_NAME": "lc-train"}.items():  # under srun
        monkeypatch.setenv(name, value)
    (run / "hpc_ckpt_1.ckpt").write_bytes(b"")
    assert checkpoint_to_resume(run) is None  # Lightning resumes from hpc_ckpt_1.ckpt by itself


def test_a_new_fit_from_a_runs_config_is_refused(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(root, "--trainer.max_epochs=1")])
    config = tmp_path / "logs" / "cifar10_e32" / "version_0" / "config.yaml"
    err = lc_train_error(capsys, "fit", "--config", str(config))
    assert "logs/cifar10_e32/version_0 already holds the checkpoints of a run" in err


def test_resuming_last_takes_a_requeue_checkpoint_newer_than_last_ckpt(tiny_cifar10, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=1")])
    run = tmp_path / "logs" / "cifar10_e32" / "version_0"
    # as if SLURM had requeued the run after last.ckpt was written (Lightning's own "last" ignores it)
    shutil.copy(run / "checkpoints" / "last.ckpt", run / "hpc_ckpt_1.ckpt")
    os.utime(run / "checkpoints" / "last.ckpt", (time.time() - 60,) * 2)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        build_cli(["fit", "--config", str(run / "config.yaml"), "--ckpt_path=last", "--trainer.max_epochs=2"])
    assert "Restored all states from the checkpoint at logs/cifar10_e32/version_0/hpc_ckpt_1.ckpt" in caplog.text
