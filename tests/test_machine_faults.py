"""What the machine does to a run costs nothing: a full disk, a read-only directory, a missing GPU and a native
crash each end in one line (or a status that says the process died), the record stays as it was, and the command
printed then completes the run."""

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import torch
from helpers.cli import RUN, SMALL, lc_train, run_lc_train, tiny_cifar_args
from helpers.runs import file_hashes

from lc_lightning.cli import main
from lc_lightning.run_directory import RunDirectory
from lc_lightning.sweep.cli import main as lc_sweep

SUDO = [] if os.geteuid() == 0 else ["sudo", "-n"]


@pytest.fixture
def small_disk(tmp_path):
    """A 16 MiB tmpfs at tmp_path/disk, and a function that remounts it with other options ("ro", "rw")."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run([*SUDO, "mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        assert not os.environ.get("CI"), mounted.stderr
        pytest.skip(f"cannot mount a tmpfs here (root or passwordless sudo needed): {mounted.stderr.decode()}")

    def remount(options: str) -> None:
        subprocess.run([*SUDO, "mount", "-o", f"remount,{options}", str(disk)], check=True)

    yield disk, remount
    subprocess.run([*SUDO, "umount", "-l", str(disk)], check=True)


def test_a_full_disk_ends_in_one_line_keeps_the_earlier_checkpoints_and_the_printed_command_resumes(
    tiny_cifar10, small_disk, monkeypatch, capsys
):
    disk, _ = small_disk
    monkeypatch.chdir(disk)
    filler = disk / "filler"
    fill = {"epoch": 1, "filler": str(filler), "leave": 300_000}  # after epoch 0's checkpoints, before epoch 1's
    fill = json.dumps({"class_path": "helpers.interruptions.FillDiskAtEpoch", "init_args": fill})
    args = tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=3", f"--trainer.callbacks+={fill}")
    status, line = lc_train(capsys, "fit", *args)
    run = RunDirectory(disk / RUN)
    failed = run.checkpoint_dir / "epoch=1-step=4.ckpt"  # the top-k checkpoint is written before last.ckpt
    assert status == 1
    assert line == (
        f"lc-train: error: disk full (no space left on device) writing {RUN}/checkpoints/epoch=1-step=4.ckpt; the "
        f"run's newest checkpoint is {RUN}/checkpoints/last.ckpt. Once there is space, resume it with: lc-train fit "
        f"--config {RUN}/config.yaml --ckpt_path last"
    )
    before = json.loads(Path(f"{filler}.hashes").read_text())
    kept = {name: digest for name, digest in file_hashes(run.path).items() if name.startswith("checkpoints/")}
    assert kept == {name: digest for name, digest in before.items() if name.startswith("checkpoints/")}
    assert file_hashes(run.path)["config.yaml"] == before["config.yaml"]
    assert sorted(path.name for path in run.checkpoint_dir.iterdir()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
    recorded = run.status()
    assert (recorded.state, recorded.epoch) == ("failed", 1)
    assert recorded.error == f"disk full (no space left on device) writing {failed}"

    filler.unlink()
    resume = shlex.split(line.partition("resume it with: ")[2])
    resumed = lc_train(capsys, *resume[1:])
    assert resumed == (0, ""), resumed
    finished = run.status()
    assert (finished.state, finished.epoch, finished.global_step) == ("finished", 3, 6)


def test_a_read_only_logs_directory_ends_every_command_in_one_line_and_changes_nothing(
    tiny_cifar10, small_disk, monkeypatch, capsys
):
    disk, remount = small_disk
    monkeypatch.chdir(disk)
    args = tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1")
    assert lc_train(capsys, "fit", *args)[0] == 0
    before = file_hashes(disk)
    remount("ro")
    checkpoint = f"{RUN}/checkpoints/last.ckpt"
    nothing_kept = "Nothing was kept: log to a writable directory (--trainer.logger.init_args.save_dir=DIR) or make it "
    expected = {
        "a new run": (["fit", *args, "--trainer.logger.init_args.name=other"],
                      f"read-only file system: cannot write logs/other. {nothing_kept}writable, then run the same "
                      "command again"),
        "a new version": (["fit", *args],
                          f"read-only file system: cannot write logs/cifar10_e32/version_1. {nothing_kept}writable, "
                          "then run the same command again"),
        "a validation": (["validate", f"--ckpt_path={checkpoint}", f"--data.data_dir={tiny_cifar10[0]}"],
                         f"read-only file system: cannot write {RUN}/validate_0. Nothing was kept: make it writable, "
                         "then run the same command again"),
        "a resume": (["fit", "--config", f"{RUN}/config.yaml", "--ckpt_path", "last", "--trainer.max_epochs=2"],
                     f"read-only file system: cannot write {RUN}/run.lock. Once it is writable, run the same command "
                     "again"),
    }  # fmt: skip
    for what, (command, message) in expected.items():
        assert lc_train(capsys, *command) == (1, f"lc-train: error: {message}"), what
        assert file_hashes(disk) == before, what
    remount("rw")
    assert lc_train(capsys, *expected["a resume"][0])[0] == 0  # the same command, once it is writable
    assert RunDirectory(disk / RUN).status().global_step == 4


def test_a_gpu_the_machine_lacks_is_one_line_and_the_status_of_a_sweeps_run_says_so(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    args = tiny_cifar_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=1")
    message = (
        f"lc-train: error: --trainer.accelerator=gpu: torch {torch.__version__} finds no GPU on this machine; train "
        "on the CPU with --trainer.accelerator=cpu (or --config configs/trainer/cpu.yaml in place of gpu.yaml/ddp.yaml)"
    )
    gpu = str(Path(__file__).resolve().parent.parent / "configs" / "trainer" / "gpu.yaml")
    assert lc_train(capsys, "fit", *args, "--config", gpu) == (2, message)
    assert not (tmp_path / "logs").exists()
    run = RunDirectory(tmp_path / "sweep" / "run")
    run.create("seed_everything: 0\n")  # as lc-sweep creates its runs
    pinned = [f"--trainer.logger.init_args.{key}" for key in ("save_dir=sweep", "name=", "version=run")]
    assert lc_train(capsys, "fit", *args, *pinned, "--trainer.accelerator=gpu") == (2, message)
    assert run.status().state == "failed" and run.status().error == f"InvalidArgumentError: {message[17:]}"
    assert run.config_text() == "seed_everything: 0\n"


@pytest.mark.slow
def test_a_native_crash_leaves_a_status_that_says_the_process_died_with_its_stack(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    root, written = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    crash = "--trainer.callbacks+={class_path: helpers.interruptions.SegfaultAtStep, init_args: {step: 3}}"
    (tmp_path / "sitecustomize.py").write_text(  # the tiny files' checksums, in the lc-train process too
        "import types\nfrom torchvision import datasets\nfrom helpers.data import register_checksums\n"
        f"register_checksums(types.SimpleNamespace(setattr=setattr), datasets.CIFAR10, {written['md5']!r})\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}{os.pathsep}{Path(__file__).resolve().parent}")
    crashed = run_lc_train("fit", *tiny_cifar_args(root, *SMALL, "--trainer.max_epochs=2", crash))
    assert crashed.returncode == -11  # SIGSEGV
    run = RunDirectory(tmp_path / RUN)
    died = run.status()
    assert (died.state, died.epoch, died.global_step) == ("died", 0, 2)  # as written at the end of epoch 0
    (crash_log,) = run.path.glob("crash-*.log")
    assert died.error == f"its process crashed: {crash_log} has its stack"
    stack = crash_log.read_text()
    assert "Fatal Python error: Segmentation fault" in stack and "in on_train_batch_start" in stack
    main(["fit", "--config", str(run.config_file), "--ckpt_path", "last"])
    assert f"lc-train: {RUN} died at epoch 0, step 2 ({died.error}); taking it over\n" in capsys.readouterr().out
    assert run.status().state == "finished" and run.status().global_step == 4


def test_a_run_started_on_a_full_disk_ends_in_one_line_and_leaves_nothing(
    tiny_cifar10, small_disk, monkeypatch, capsys
):
    disk, _ = small_disk
    monkeypatch.chdir(disk)
    filler = disk / "filler"
    with filler.open("wb") as file, pytest.raises(OSError):
        while True:  # until the disk is full
            file.write(bytes(1 << 20))
    before = file_hashes(disk)
    assert lc_train(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *SMALL)) == (
        1,
        "lc-train: error: disk full (no space left on device) writing logs/cifar10_e32/version_0/run.lock. Nothing "
        "was kept: free some space, then run the same command again",
    )
    assert file_hashes(disk) == before and sorted(path.name for path in disk.iterdir()) == ["filler"]


def test_lc_sweep_on_a_read_only_disk_ends_in_one_line(small_disk, capsys):
    disk, remount = small_disk
    remount("ro")
    quickstart = str(Path(__file__).resolve().parent.parent / "configs" / "quickstart.yaml")
    with pytest.raises(SystemExit) as exit_info:
        lc_sweep(["--config", quickstart, "--axis", "seed_everything=0,1", "--dir", str(disk / "sweep")])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"lc-sweep: error: read-only file system: cannot write {disk / 'sweep' / 'sweep.yaml'}; once that is fixed, "
        "run the same command again\n"
    )
