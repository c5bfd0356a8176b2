"""Runs started at the same instant never share a directory, and one run has one live process."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.cli import tiny_cifar_args

from lc_lightning.run_directory import RunDirectory

TESTS = Path(__file__).resolve().parent


def start_together(out: Path, rounds: int, count: int, md5: dict, args: list[str]) -> list[list[tuple[int, str, str]]]:
    """Run ``lc-train ARGS`` ``rounds`` times in ``count`` processes started together ({i}: the process's
    number), round r in the working directory ``out/<r>``; each round's processes' (exit status, stdout,
    stderr)."""
    command = [sys.executable, "-m", "helpers.concurrent_fits", str(out), str(rounds), str(count), json.dumps(md5)]
    subprocess.run([*command, "--", *args], check=True, timeout=600, env={**os.environ, "PYTHONPATH": str(TESTS)})

    def result(folder: Path, i: int) -> tuple[int, str, str]:
        return tuple(
            int(text) if suffix == "status" else text
            for suffix in ("status", "out", "err")
            for text in [(folder / f"{i}.{suffix}").read_text()]
        )

    return [[result(out / str(r), i) for i in range(count)] for r in range(rounds)]


@pytest.mark.slow
def test_fits_started_together_with_one_name_get_a_directory_each(tiny_cifar10, tmp_path):
    root, written = tiny_cifar10
    lr = "0.0{i}5"  # process i's own learning rate tells whose each file is
    args = ["fit", *tiny_cifar_args(root, "--data.train_subset=16", "--data.val_subset=8", "--trainer.max_epochs=1",
                                    "--model.network.init_args.expansion=2", "--trainer.callbacks=null",
                                    "--trainer.enable_model_summary=false", f"--model.optimizer.lr={lr}")]  # fmt: skip
    rounds = start_together(tmp_path, 5, 10, written["md5"], args)
    for number, processes in enumerate(rounds):
        names = set()
        for i, (exit_status, out, err) in enumerate(processes):
            assert exit_status == 0, err
            run_line = next(line for line in out.splitlines() if line.lstrip().startswith("run "))
            run = RunDirectory(tmp_path / str(number) / run_line.split()[1])
            names.add(run.path.name)
            own_lr = float(lr.format(i=i))
            config = run.config()
            assert config["trainer"]["logger"]["init_args"]["version"] == run.path.name
            assert config["model"]["optimizer"]["init_args"]["lr"] == own_lr
            assert sorted(path.name for path in run.checkpoints()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
            last = torch.load(run.checkpoint_dir / "last.ckpt", weights_only=True)
            assert last["optimizer_states"][0]["param_groups"][0]["initial_lr"] == own_lr
            status = run.status()
            assert (status.state, status.global_step, status.world_size) == ("finished", 2, 1)
            assert f"val/acc      last {status.metrics['val/acc']:.4f}, best" in out
            assert len(list(run.path.glob("events.out.tfevents.*"))) == 1
        assert names == {f"version_{n}" for n in range(10)}, number


@pytest.mark.slow
def test_fits_started_together_with_one_given_version_leave_that_run_to_the_first(tiny_cifar10, tmp_path):
    """The others stop with one line and leave the directory as the first one makes it: none removes it."""
    root, written = tiny_cifar10
    args = ["fit", *tiny_cifar_args(root, "--data.train_subset=16", "--data.val_subset=8", "--trainer.max_epochs=1",
                                    "--model.network.init_args.expansion=2", "--trainer.callbacks=null",
                                    "--trainer.logger.init_args.version=fixed")]  # fmt: skip
    (processes,) = start_together(tmp_path, 1, 3, written["md5"], args)
    statuses = sorted(exit_status for exit_status, _, _ in processes)
    assert statuses == [0, 2, 2], processes
    for exit_status, _, err in processes:
        if exit_status == 2:  # refused while the first trains, or after it finished
            assert "is in use by process" in err or "already holds the checkpoints of a run" in err, err
    run = RunDirectory(tmp_path / "0" / "logs" / "cifar10_e32" / "fixed")
    assert run.status().state == "finished" and run.config()["trainer"]["logger"]["init_args"]["version"] == "fixed"
    assert sorted(path.name for path in run.checkpoints()) == ["epoch=0-step=2.ckpt", "last.ckpt"]
