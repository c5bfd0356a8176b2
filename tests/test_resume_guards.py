"""A resume never silently starts over and never damages the record it resumes: ``--ckpt_path last`` names a
checkpoint newer than last.ckpt, keeps an earlier start's files aside, works from any working directory, refuses
model options the checkpoint cannot take, and a resume that fails leaves a finished run as it was."""

import os
import shutil
import time

import pytest
from helpers.cli import RUN, SMALL, lc_train, lc_train_output, tiny_cifar_args
from helpers.runs import file_hashes

from lc_lightning.run_directory import RunDirectory

NEW_RUN = "start a new run with --trainer.logger.init_args.version=null --trainer.default_root_dir=null"


@pytest.mark.parametrize("last", ["missing", "older"])
def test_last_names_a_checkpoint_newer_than_last_ckpt_and_that_one_resumes(
    tiny_cifar10, tmp_path, monkeypatch, capsys, last
):
    monkeypatch.chdir(tmp_path)
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1"))[0] == 0
    run = RunDirectory(tmp_path / RUN)
    last_ckpt = run.checkpoint_dir / "last.ckpt"
    if last == "missing":  # as a disk that filled up between the epoch's two checkpoints leaves it
        last_ckpt.unlink()
    else:  # as it is where that happened at a later epoch: last.ckpt is an epoch behind
        os.utime(last_ckpt, (time.time() - 60,) * 2)
    before = file_hashes(run.path)
    resume = ["fit", "--config", f"{RUN}/config.yaml", "--trainer.max_epochs=2"]
    assert lc_train(capsys, *resume, "--ckpt_path", "last") == (
        2,
        f"lc-train: error: --ckpt_path last: {RUN} holds no last.ckpt or requeue.ckpt as new as its newest checkpoint, "
        f"epoch=0-step=2.ckpt; resume from that one with --ckpt_path {RUN}/checkpoints/epoch=0-step=2.ckpt, or "
        f"{NEW_RUN}",
    )
    assert file_hashes(run.path) == before
    assert lc_train(capsys, *resume, "--ckpt_path", f"{RUN}/checkpoints/epoch=0-step=2.ckpt")[0] == 0
    assert (run.status().state, run.status().global_step) == ("finished", 4)


def test_last_starts_a_run_stopped_before_its_first_checkpoint_again_and_keeps_its_files_aside(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    ctrl_c = "--trainer.callbacks+={class_path: helpers.interruptions.CtrlCAtStep, init_args: {step: 1}}"
    args = tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1", ctrl_c, "--trainer.log_every_n_steps=1")
    assert lc_train(capsys, "fit", *args)[0] == 1
    run = RunDirectory(tmp_path / RUN)
    earlier = file_hashes(run.path)
    assert run.status().state == "interrupted" and not run.checkpoints()
    again = ["fit", "--config", f"{RUN}/config.yaml", "--ckpt_path", "last", "--trainer.callbacks=null"]  # no Ctrl-C
    status, out, _ = lc_train_output(capsys, *again)
    assert status == 0
    assert (
        f"lc-train: {RUN} has no checkpoint to resume from: training it from the start; the earlier start's files are "
        f"kept in {RUN}/attempt_0\n"
    ) in out
    attempt = run.path / "attempt_0"
    assert file_hashes(attempt) == {name: digest for name, digest in earlier.items() if name != "run.lock"}
    assert RunDirectory(attempt).status().state == "interrupted"
    assert (run.status().state, run.status().global_step) == ("finished", 2)
    assert len(list(run.path.glob("events.out.tfevents.*"))) == 1  # TensorBoard shows the new start alone


def test_a_run_resumes_in_its_own_directory_from_any_working_directory(tiny_cifar10, tmp_path, monkeypatch, capsys):
    (tmp_path / "here").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1"))[0] == 0
    run = RunDirectory(tmp_path / "here" / RUN)
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert (
        lc_train(capsys, "fit", "--config", str(run.config_file), "--ckpt_path=last", "--trainer.max_epochs=2")[0] == 0
    )
    assert (run.status().state, run.status().global_step) == ("finished", 4)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_a_resume_that_fails_leaves_a_finished_run_as_it_was(tiny_cifar10, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1"))[0] == 0
    run = RunDirectory(tmp_path / RUN)
    last = run.checkpoint_dir / "last.ckpt"
    last.write_bytes(last.read_bytes()[:50_000])
    before = file_hashes(run.path)
    status, line = lc_train(
        capsys, "fit", "--config", f"{RUN}/config.yaml", "--ckpt_path", "last", "--trainer.max_epochs=2"
    )
    assert status == 2
    assert line.startswith(
        f"lc-train: error: cannot read checkpoint {last}: it is truncated or corrupt (torch.load raised "
    )
    assert file_hashes(run.path) == before
    assert run.status().state == "finished"


def test_model_options_a_checkpoint_cannot_take_are_refused_or_named(tiny_cifar10, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1"))[0] == 0
    run = RunDirectory(tmp_path / RUN)
    before = file_hashes(run.path)
    resume = [
        "fit",
        "--config",
        f"{RUN}/config.yaml",
        "--trainer.max_epochs=2",
        "--model.network.init_args.expansion=4",
    ]
    status, line = lc_train(capsys, *resume, "--ckpt_path", "last")
    assert status == 2 and line.startswith(
        f"lc-train: error: checkpoint {run.checkpoint_dir / 'last.ckpt'} does not fit "
    )
    assert line.endswith(f"It was trained with {run.config_file}: resume from that config, without model options")
    assert file_hashes(run.path) == before
    explicit = f"{RUN}/checkpoints/last.ckpt"
    status, _, err = lc_train_output(capsys, *resume, "--ckpt_path", explicit)
    assert status == 0
    replaced = "--model.network.init_args.expansion=4 (its 2)"
    assert f"lc-train: checkpoint {explicit} keeps the model it was trained with, in place of {replaced}\n" in err


def test_a_run_copied_elsewhere_resumes_in_its_copy_and_leaves_the_original_as_it_was(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1"))[0] == 0
    original = RunDirectory(tmp_path / RUN)
    copy = RunDirectory(tmp_path / "moved" / "cifar10_e32" / "version_0")
    shutil.copytree(original.path, copy.path)
    before = file_hashes(original.path)
    assert (
        lc_train(capsys, "fit", "--config", str(copy.config_file), "--ckpt_path=last", "--trainer.max_epochs=2")[0] == 0
    )
    assert (copy.status().state, copy.status().global_step) == ("finished", 4)
    assert file_hashes(original.path) == before
