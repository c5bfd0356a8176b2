"""Which runs lc-sweep trains and how: here, it trains each run of the grid that is not finished, one lc-train
each, in grid order, resuming an interrupted run from its checkpoint; on SLURM, array task i trains the grid's
run i, and the array holds exactly the runs to train, first and last included.

lc-sweep's lc-train processes are replaced by a fake interpreter that records its arguments (the tests replay a
command in this process where they need it trained); sbatch, squeue and srun by scripts that do the same."""

import logging
import os
import subprocess
from pathlib import Path

import yaml
from helpers.cli import added_callback, lc_train_output
from helpers.sweeps import record_lc_train_commands, record_slurm_commands, recorded, sweep_output, tiny_config, trained
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.sweep.grid import load_sweep

SWEEP_SCRIPT = Path(__file__).resolve().parents[1] / "lc_lightning" / "slurm" / "sweep.sbatch"


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
