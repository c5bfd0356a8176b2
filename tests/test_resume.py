"""Exact resume: training data follow from (seed, epoch, image), a loader resumes in the middle of its
epoch, and a run resumes from its directory, at an epoch boundary or mid-epoch after a requeue."""

import logging
import os
import shutil
import time
from pathlib import Path

import pytest
import torch
from helpers.cli import tiny_cifar_args, usage_error
from helpers.loaders import epoch_batches
from helpers.runs import assert_same_training
from helpers.slurm import fake_scontrol

from lc_lightning.cli import build_cli
from lc_lightning.data import CIFAR10DataModule
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_directory import RunDirectory, RunStatus


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
        loaders[workers] = data.train_dataloader()
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
    data = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=0)
    data.setup("fit")
    other_seed = torch.cat([labels for _, labels in epoch_batches(data.train_dataloader(), 0)])
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


@pytest.mark.parametrize("loader, workers", [("torch", 0), ("torch", 2), ("device", 0)])
def test_a_loader_resumed_at_a_batch_gives_the_rest_of_that_epoch_and_whole_others(tiny_cifar10, loader, workers):
    root, _ = tiny_cifar10

    def training_loader():
        data = CIFAR10DataModule(data_dir=str(root), batch_size=8, num_workers=workers, loader=loader)
        data.setup("fit")
        return data.train_dataloader()

    reference = training_loader()
    whole = epoch_batches(reference, 1)
    assert (reference.position.epoch, reference.position.batches) == (1, 5)
    resumed = training_loader()
    resumed.position.resume_at(1, 2)
    assert_same_batches(epoch_batches(resumed, 1), whole[2:])
    assert (resumed.position.epoch, resumed.position.batches) == (1, 5)
    assert_same_batches(epoch_batches(resumed, 1), whole)  # only the first iteration resumes
    elsewhere = training_loader()
    elsewhere.position.resume_at(0, 3)  # a position in another epoch: this one is read whole
    assert_same_batches(epoch_batches(elsewhere, 1), whole)
    counted = training_loader()
    counted.sampler.set_epoch(2)
    batches = iter(counted)
    next(batches), next(batches)
    assert (counted.position.epoch, counted.position.batches) == (2, 2)  # delivered, not prefetched


@pytest.mark.parametrize("loader", ["torch", "device"])
def test_a_run_stopped_at_an_epoch_boundary_resumes_from_its_directory_bitwise(
    loader, tiny_cifar10, tmp_path, monkeypatch
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(
        root,
        "--trainer.max_epochs=3",
        "--data.num_workers=2",
        f"--data.loader={loader}",
        "--trainer.log_every_n_steps=1",
    )
    build_cli(["fit", *args])  # uninterrupted: logs/cifar10_e32/version_0
    stop = "--trainer.callbacks+={class_path: helpers.interruptions.StopAfterEpoch, init_args: {epoch: 1}}"
    build_cli(["fit", *args, stop])  # stopped after 2 of 3 epochs: version_1
    run = tmp_path / "logs" / "cifar10_e32" / "version_1"
    stopped = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert stopped["epoch"] == 1
    resumed = build_cli(["fit", "--config", str(run / "config.yaml"), "--ckpt_path=last"])
    assert Path(resumed.trainer.log_dir).resolve() == run
    assert sorted(p.name for p in run.parent.iterdir()) == ["version_0", "version_1"]
    assert_same_training(run, run.parent / "version_0", steps=3 * 5)


@pytest.mark.parametrize("loader, workers", [("torch", 0), ("torch", 2), ("device", 0)])
def test_a_run_requeued_in_the_middle_of_an_epoch_resumes_with_the_next_batch_bitwise(
    loader, workers, tiny_cifar10, tmp_path, monkeypatch
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    calls = fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    args = tiny_cifar_args(
        root, "--trainer.max_epochs=3", f"--data.num_workers={workers}", f"--data.loader={loader}",
        "--trainer.log_every_n_steps=1",
    )  # fmt: skip
    build_cli(["fit", *args])  # uninterrupted: version_0
    run = tmp_path / "logs" / "cifar10_e32" / "version_1"
    requeue = RunDirectory(run).requeue_checkpoint
    requeue_callback = f"{{class_path: lc_lightning.callbacks.RequeueOnSignal, init_args: {{checkpoint: {requeue}}}}}"
    callbacks = [
        f"--trainer.callbacks+={requeue_callback}",
        "--trainer.callbacks+={class_path: helpers.interruptions.SignalAtStep, init_args: {step: 7}}",
    ]
    with pytest.raises(SystemExit):  # Requeued
        build_cli(["fit", *args, *callbacks])
    assert calls.read_text() == "requeue 77\n"
    saved = torch.load(requeue, weights_only=False)
    # signalled as step 7 (epoch 1, batch 2) began: saved at its end
    assert (saved["global_step"], saved["epoch"]) == (8, 1)
    assert saved["CIFAR10DataModule"] == {"train_position": [1, 3]}
    status = RunDirectory(run).status()
    assert (status.state, status.global_step, status.error) == ("interrupted", 8, "Requeued")
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 5  # epoch 0's end
    build_cli(["fit", "--config", str(run / "config.yaml"), "--ckpt_path=last"])
    assert_same_training(run, run.parent / "version_0", steps=3 * 5)


def test_a_fit_never_overwrites_an_earlier_run(tmp_path):
    run = RunDirectory(tmp_path / "version_0")
    assert run.resume_point(None, world_size=1, restarted_by_slurm=False) is None  # a new run
    assert run.resume_point("last", world_size=1, restarted_by_slurm=False) is None
    run.checkpoint_dir.mkdir(parents=True)
    (run.checkpoint_dir / "last.ckpt").write_bytes(b"")
    with pytest.raises(InvalidArgumentError, match=r"already holds the checkpoints of a run. Resume it with"):
        run.resume_point(None, world_size=1, restarted_by_slurm=False)
    last = str(run.checkpoint_dir / "last.ckpt")
    assert run.resume_point(None, world_size=1, restarted_by_slurm=True) == last  # requeued or preempted
    assert run.resume_point("last", world_size=1, restarted_by_slurm=False) == last
    assert run.resume_point("other.ckpt", world_size=1, restarted_by_slurm=False) == "other.ckpt"
    run.write_status(RunStatus("interrupted", world_size=2))  # another layout sees other batches
    assert run.resume_point("last", world_size=2, restarted_by_slurm=False) == last
    for requested, restarted in (("last", False), (None, True)):
        with pytest.raises(InvalidArgumentError, match=r"trained with 2 processes, this fit has 1: resume it with the"):
            run.resume_point(requested, world_size=1, restarted_by_slurm=restarted)


def test_a_new_fit_from_a_runs_config_is_refused(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(root, "--trainer.max_epochs=1")])
    config = tmp_path / "logs" / "cifar10_e32" / "version_0" / "config.yaml"
    err = usage_error(capsys, "fit", "--config", str(config))
    assert "logs/cifar10_e32/version_0 already holds the checkpoints of a run" in err


def test_resuming_last_takes_a_requeue_checkpoint_newer_than_last_ckpt(tiny_cifar10, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=1")])
    run = RunDirectory(tmp_path / "logs" / "cifar10_e32" / "version_0")
    last = run.checkpoint_dir / "last.ckpt"
    assert run.newest_checkpoint() == last
    # as if SLURM had requeued the run after last.ckpt was written
    shutil.copy(last, run.requeue_checkpoint)
    os.utime(last, (time.time() - 60,) * 2)
    assert run.newest_checkpoint() == run.requeue_checkpoint
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        build_cli(["fit", "--config", str(run.config_file), "--ckpt_path=last", "--trainer.max_epochs=2"])
    restored = run.requeue_checkpoint  # the run's config names its directory by its absolute path
    assert f"Restored all states from the checkpoint at {restored}" in caplog.text
