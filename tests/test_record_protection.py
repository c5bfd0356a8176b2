"""A run that has checkpoints is a record, finished or not: a new fit into the directory of a run that was
interrupted, requeued or died is refused in one line and changes nothing, and lc-sweep keeps such a run's config
and resumes it rather than starting it over."""

import json

from helpers.cli import RUN, SMALL, added_callback, lc_train_output, tiny_cifar_args
from helpers.runs import file_hashes
from helpers.sweeps import record_lc_train_commands, recorded, sweep_output, tiny_config, trained

from lc_lightning.run_directory import RunDirectory

CTRL_C_IN_EPOCH_1 = added_callback("helpers.interruptions.CtrlCAtStep", step=3)  # two steps an epoch
"""Ctrl-C after epoch 0's checkpoint, in a fit that did not resume."""


def make_died(run: RunDirectory) -> None:
    """Leave ``run`` as a process killed while it trained leaves it: status.json says "running" (as written at its
    last epoch's end) and no process holds it."""
    path = run.path / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "running", "error": None}))


def make_requeued_in_its_first_epoch(run: RunDirectory) -> None:
    """Leave ``run`` as a job requeued by SLURM in its first epoch, never restarted, leaves it: its one checkpoint
    is the requeue checkpoint."""
    (run.checkpoint_dir / "last.ckpt").rename(run.requeue_checkpoint)
    path = run.path / "status.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "state": "interrupted", "error": "Requeued"}))


def test_a_new_fit_into_an_unfinished_run_with_checkpoints_is_refused_in_one_line_and_changes_nothing(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)  # not a job SLURM restarted
    args = tiny_cifar_args(tiny_cifar10[0], *SMALL, "--model.network.init_args.width=4", "--trainer.max_epochs=2")
    assert lc_train_output(capsys, "fit", *args, CTRL_C_IN_EPOCH_1)[0] == 1
    run = RunDirectory(tmp_path / RUN)
    assert run.status().state == "interrupted" and run.checkpoints()
    new_fits = (["--config", str(run.config_file)], [*args, f"--trainer.logger.init_args.version={run.path.name}"])
    for leave_as, state in [
        (None, "interrupted"),
        (make_died, "died"),
        (make_requeued_in_its_first_epoch, "interrupted"),
    ]:
        if leave_as is not None:
            leave_as(run)
        assert run.status().state == state
        before = file_hashes(run.path)
        for new_fit in new_fits:  # from the run's config, or the command that started it with the run's version
            status, _, err = lc_train_output(capsys, "fit", *new_fit)
            assert status == 2
            (line,) = err.strip().splitlines()
            assert line.startswith(f"lc-train: error: {RUN} already holds the checkpoints of a run. Resume it with "), (
                line
            )
            assert file_hashes(run.path) == before
            assert run.status().state == state


def test_lc_sweep_resumes_an_unfinished_run_with_checkpoints_in_the_config_it_trained_with(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    lc_train_calls = record_lc_train_commands(tmp_path, monkeypatch)
    monkeypatch.chdir(tmp_path)
    config = tiny_config(tmp_path, tiny_cifar10[0])
    sweep_dir = tmp_path / "sweep"
    args = ["--config", str(config), "--axis", "seed_everything=0,1", "--dir", str(sweep_dir)]
    sweep_output(capsys, *args)
    first, _ = (call[2:] for call in recorded(lc_train_calls))
    assert lc_train_output(capsys, *first, CTRL_C_IN_EPOCH_1)[0] == 1
    run, untrained = RunDirectory(sweep_dir / "seed_everything=0"), RunDirectory(sweep_dir / "seed_everything=1")
    config.write_text(config.read_text().replace("max_epochs: 2", "max_epochs: 3"))  # the grid changed since
    for leave_as, state in [(None, "was interrupted"), (make_died, "died")]:
        if leave_as is not None:
            leave_as(run)
        before = file_hashes(run.path)
        calls = len(recorded(lc_train_calls))
        out = sweep_output(capsys, *args)
        assert f"seed_everything=0: to resume (it {state}: " in out
        assert (
            "it keeps the config it trained with, where the grid's configs now set other values: trainer.max_epochs"
            in out
        )
        assert file_hashes(run.path) == before
        assert trained(recorded(lc_train_calls)[calls:]) == [str(run.path), str(untrained.path)]
        assert untrained.config()["trainer"]["max_epochs"] == 3
