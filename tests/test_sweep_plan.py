"""Which runs lc-sweep trains and how: here, it trains each run of the grid that is not finished, one lc-train
each, in grid order, resuming an interrupted run from its checkpoint; on SLURM, array task i trains the grid's
run i, and the array holds exactly the runs to train, first and last included.

lc-sweep's lc-train processes are replaced by a fake interpreter that records its arguments (the tests replay a
command in this process where they need it trained); sbatch, squeue and srun by scripts that do the same."""

import logging
import os
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from helpers.cli import lc_train_output
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_accumulation_requeue import added_callback

from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.sweep.cli import main as lc_sweep
from lc_lightning.sweep.grid import load_sweep

SWEEP_SCRIPT = Path(__file__).resolve().parents[1] / "lc_lightning" / "slurm" / "sweep.sbatch"


def tiny_config(tmp_path: Path, data_dir: Path) -> Path:
    """A config of a tiny run for a sweep's runs: ResNet-LC-8-4x2 on 16 images of the tiny CIFAR-10 at
    ``data_dir``, two steps an epoch for two epochs, on the CPU in fp32, logging every step, no analysis."""
    config = {
        "trainer": {"accelerator": "cpu", "precision": "32-true", "max_epochs": 2, "callbacks": None,
                    "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1},
        "model": {"network": {"class_path": "lc_lightning.models.CifarResNet",
                              "init_args": {"depth": 8, "width": 4, "expansion": 2}}},
        "data": {"class_path": "lc_lightning.data.CIFAR10DataModule",
                 "init_args": {"data_dir": str(data_dir), "download": False, "num_workers": 0, "batch_size": 8,
                               "train_subset": 16, "val_subset": 8}},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def recording_script(path: Path, calls: Path, first: str = "", then: str = "") -> None:
    """An executable script at ``path`` that runs the shell commands ``first``, writes its arguments, one a line,
    to a new numbered file in ``calls``, then runs the shell commands ``then``."""
    calls.mkdir(exist_ok=True)
    path.parent.mkdir(exist_ok=True)
    folder = shlex.quote(str(calls))
    record = (
        f'call={folder}/$(ls {folder} | wc -l)\nprintf "%s\\n" "$@" > "$call.partial"\nmv "$call.partial" "$call"\n'
    )
    path.write_text(f"#!/bin/sh\n{first}\n{record}{then}\n")
    path.chmod(0o755)


def recorded(calls: Path) -> list[list[str]]:
    """The arguments of every call a recording script received, in the order of the calls."""
    files = sorted(calls.iterdir(), key=lambda path: int(path.name)) if calls.is_dir() else []
    return [path.read_text().splitlines() for path in files]


def record_lc_train_commands(tmp_path: Path, monkeypatch) -> Path:
    """For this test, lc-sweep's lc-train processes (``sys.executable -m lc_lightning.cli ...``) replaced by a
    recording script; the folder of its calls. Any other use of ``sys.executable`` runs this Python."""
    calls = tmp_path / "lc-train-calls"
    interpreter = tmp_path / "fake-python" / "python"
    recording_script(
        interpreter, calls, first=f'[ "$1 $2" = "-m lc_lightning.cli" ] || exec {shlex.quote(sys.executable)} "$@"'
    )
    monkeypatch.setattr(sys, "executable", str(interpreter))
    return calls


def record_slurm_commands(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """For this test, sbatch, squeue and srun first on PATH, each a recording script: sbatch answers as
    ``sbatch --parsable`` does for job 123, squeue lists no job; the folder of each one's calls, by command."""
    bin_dir = tmp_path / "fake-slurm"
    calls = {command: tmp_path / f"{command}-calls" for command in ("sbatch", "squeue", "srun")}
    recording_script(bin_dir / "sbatch", calls["sbatch"], then="echo 123")
    recording_script(bin_dir / "squeue", calls["squeue"])
    recording_script(bin_dir / "srun", calls["srun"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def sweep_output(capsys, *args: str) -> str:
    """Run lc-sweep in this process, expecting it to succeed; what it printed on stdout."""
    try:
        lc_sweep(list(args))
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), capsys.readouterr()
    return capsys.readouterr().out


def trained(calls: list[list[str]]) -> list[str]:
    """The run directories of recorded lc-sweep commands (``-m lc_lightning.cli fit --config <run>/config.yaml
    --ckpt_path last``), each checked to be that command."""
    runs = []
    for call in calls:
        assert call[:4] == ["-m", "lc_lightning.cli", "fit", "--config"] and call[5:] == ["--ckpt_path", "last"]
        assert Path(call[4]).name == "config.yaml"
        runs.append(str(Path(call[4]).parent))
    return runs


def test_a_sweep_here_trains_every_run_in_grid_order_and_then_only_those_not_finished(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    lc_train_calls = record_lc_train_commands(tmp_path, monkeypatch)
    sweep_dir = tmp_path / "sweep"
    args = ["--config", str(tiny_config(tmp_path, tiny_cifar10[0])), "--axis", "seed_everything=0,1,2,3"]
    args += ["--dir", str(sweep_dir)]
    runs = load_sweep(None, args[1:2], args[3:4]).runs()
    sweep_output(capsys, *args)
    assert trained(recorded(lc_train_calls)) == [str(sweep_dir / run.name) for run in runs]
    for run in runs:
        assert RunDirectory(sweep_dir / run.name).config()["seed_everything"] == run.values["seed_everything"]
    for index in (0, 3):  # the first and the last run finished
        RunDirectory(sweep_dir / runs[index].name).write_status(RunStatus("finished"))
    out = sweep_output(capsys, *args)
    assert "4 runs, 2 to train" in out
    assert trained(recorded(lc_train_calls)[4:]) == [str(sweep_dir / runs[index].name) for index in (1, 2)]


def newest_attempt_steps(run_dir: Path) -> list[int]:
    """The steps of the training losses logged by the run's newest start (its newest event file)."""
    newest = max(run_dir.glob("events.out.tfevents.*"), key=lambda path: path.stat().st_mtime)
    events = EventAccumulator(str(newest), size_guidance={"scalars": 0})
    events.Reload()
    return [event.step for event in events.Scalars("train/loss_step")]


def test_the_next_sweep_resumes_an_interrupted_run_from_its_checkpoint_and_skips_a_finished_one(
    tiny_cifar10, tmp_path, monkeypatch, capsys, caplog
):
    lc_train_calls = record_lc_train_commands(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    sweep_dir = tmp_path / "sweep"
    args = ["--config", str(tiny_config(tmp_path, tiny_cifar10[0])), "--axis", "seed_everything=0,1,2"]
    args += ["--dir", str(sweep_dir)]
    sweep_output(capsys, *args)
    finished, interrupted, untouched = (call[2:] for call in recorded(lc_train_calls))
    RunDirectory(Path(finished[2]).parent).write_status(RunStatus("finished"))
    ctrl_c = added_callback("helpers.interruptions.CtrlCAtStep", step=3)  # in epoch 1, after epoch 0's checkpoint
    assert lc_train_output(capsys, *interrupted, ctrl_c)[0] == 1
    stopped = RunDirectory(Path(interrupted[2]).parent)
    assert (stopped.status().state, stopped.status().global_step) == ("interrupted", 3)

    out = sweep_output(capsys, *args)
    assert "seed_everything=0: finished\n" in out
    assert "seed_everything=1: to resume (it was interrupted: KeyboardInterrupt)\n" in out
    assert "seed_everything=2: to start\n" in out
    resumed, started = (call[2:] for call in recorded(lc_train_calls)[3:])
    assert (resumed, started) == (interrupted, untouched)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        assert lc_train_output(capsys, *resumed)[0] == 0
    assert f"Restored all states from the checkpoint at {stopped.checkpoint_dir / 'last.ckpt'}" in caplog.text
    assert (stopped.status().state, stopped.status().global_step) == ("finished", 4)
    assert newest_attempt_steps(stopped.path) == [2, 3]  # epoch 1 alone: continued, not started over


def array_indices(spec: str) -> list[int]:
    """The task indices of sbatch's ``--array`` value ("0-2,5" -> [0, 1, 2, 5])."""
    indices = []
    for part in spec.split(","):
        first, _, last = part.partition("-")
        indices += range(int(first), int(last or first) + 1)
    return indices


def array_task(script: str, sweep_dir: str, index: int, slurm_calls: dict[str, Path]) -> str | None:
    """Run the batch ``script`` of a sweep as array task ``index`` would (its srun recorded): the config file
    of the lc-train command it runs, or None where it ran none."""
    before = len(recorded(slurm_calls["srun"]))
    environment = {**os.environ, "SLURM_ARRAY_TASK_ID": str(index)}
    subprocess.run(["bash", script, sweep_dir], env=environment, capture_output=True, timeout=60)
    calls = recorded(slurm_calls["srun"])[before:]
    if not calls:
        return None
    (call,) = calls
    assert call[2:5] == ["lc-train", "fit", "--config"] and call[6:] == ["--ckpt_path", "last"]
    return call[5]


def test_the_array_a_sweep_submits_maps_each_task_to_its_run_of_the_grid_first_and_last_included(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    slurm_calls = record_slurm_commands(tmp_path, monkeypatch)
    sweep_dir = tmp_path / "sweep"
    args = ["--config", str(tiny_config(tmp_path, tiny_cifar10[0])), "--axis", "seed_everything=10,11,12,13"]
    args += ["--dir", str(sweep_dir), "--slurm"]
    runs = load_sweep(None, args[1:2], args[3:4]).runs()
    for finished in ([], [0, 3]):  # all four runs, then the two between the first and last, which finished
        for index in finished:
            RunDirectory(sweep_dir / runs[index].name).write_status(RunStatus("finished"))
        submitted = len(recorded(slurm_calls["sbatch"]))
        out = sweep_output(capsys, *args)
        assert f"submitted job array 123 ({4 - len(finished)} tasks)" in out
        (call,) = recorded(slurm_calls["sbatch"])[submitted:]
        (spec,) = [option.removeprefix("--array=") for option in call if option.startswith("--array=")]
        pending = [index for index in range(len(runs)) if index not in finished]
        assert array_indices(spec) == pending
        script, sweep = call[-2:]
        assert (script, sweep) == (str(SWEEP_SCRIPT), str(sweep_dir))
        for index in pending:
            config = array_task(script, sweep, index, slurm_calls)
            assert config == str(sweep_dir / runs[index].name / "config.yaml")
            assert yaml.safe_load(Path(config).read_text())["seed_everything"] == 10 + index
        assert array_task(script, sweep, len(runs), slurm_calls) is None  # no task past the last run
