"""The run directory: named before the run, its config written once, its status (with the final value of
every scalar) kept, its files readable by others, never changed by an evaluation, and nothing left behind
by a start that failed."""

import hashlib
import json
import math
import os
import socket
import stat
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.cli import RUN, tiny_cifar_args, usage_error
from helpers.runs import file_hashes, final_value
from lightning.pytorch.utilities.exceptions import SIGTERMException

from lc_lightning.callbacks import RecordRun
from lc_lightning.cli import build_cli, main
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.module import ImageClassifier
from lc_lightning.run_arguments import with_evaluated_run_config
from lc_lightning.run_directory import RunDirectory, RunStatus, write_atomically

ANALYSIS = str(Path(__file__).resolve().parent.parent / "configs" / "callbacks" / "analysis.yaml")


def test_a_fit_that_ends_normally_is_finished_with_the_last_value_of_every_scalar(tiny_cifar10, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=2")])
    run_dir = tmp_path.joinpath(RUN)
    status = RunDirectory(run_dir).status()
    assert (status.state, status.error, status.epoch, status.global_step, status.world_size) == (
        "finished",
        None,
        2,
        10,
        1,
    )
    for tag in ("val/acc", "val/loss", "val/fgsm_acc", "filters/entropy_first", "train/loss_epoch"):
        assert status.metrics[tag] == pytest.approx(final_value(run_dir, tag), rel=1e-6), tag


def test_a_fit_that_raises_is_failed_with_its_error(tiny_cifar10, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    nan_network = ["--model.network=helpers.faulty_networks.NaNAfterSteps", "--model.network.init_args.nan_from=7"]
    args = [*tiny_cifar_args(tiny_cifar10[0]), *nan_network, "--trainer.max_epochs=3"]
    args.remove("--model.network.init_args.depth=8")
    usage_error(capsys, "fit", *args)
    status = RunDirectory(tmp_path.joinpath(RUN)).status()
    assert status.state == "failed" and status.epoch == 1 and "val/acc" in status.metrics  # epoch 0's
    assert status.error.startswith(
        "TrainingDivergedError: the training loss is not finite (nan on this rank) at step 7"
    )


@pytest.mark.parametrize(
    "wrong, error",
    [("--model.network.init_args.expansion=0", "InvalidArgumentError: expansion must be an integer >= 1"),
     ("--data.init_args.train_subset=0", "InvalidArgumentError: train_subset must be >= 1, got 0")],
)  # fmt: skip
def test_a_sweep_run_that_cannot_be_built_is_failed_with_its_error(
    tiny_cifar10, tmp_path, monkeypatch, capsys, wrong, error
):
    monkeypatch.chdir(tmp_path)
    run = RunDirectory(tmp_path.joinpath(RUN))
    run.create("seed_everything: 0\n")  # as lc-sweep creates its runs
    args = tiny_cifar_args(tiny_cifar10[0], wrong, "--trainer.logger.init_args.version=0")
    assert error.partition(": ")[2] in usage_error(capsys, "fit", *args)
    status = run.status()
    assert status.state == "failed" and status.error.startswith(error)
    assert run.config_text() == "seed_everything: 0\n"


@pytest.mark.parametrize(
    "exception, state",
    [(KeyboardInterrupt(), "interrupted"), (SIGTERMException(), "interrupted"),
     (RuntimeError("CUDA out of memory"), "failed")],
)  # fmt: skip
def test_ctrl_c_and_sigterm_interrupt_a_run_other_exceptions_fail_it(tmp_path, exception, state):
    trainer = SimpleNamespace(
        is_global_zero=True, current_epoch=3, global_step=30, world_size=2, state=SimpleNamespace(fn="fit"),
        callback_metrics={"val/acc": torch.tensor(0.5)},
    )  # fmt: skip
    RecordRun(RunDirectory(tmp_path)).on_exception(trainer, None, exception)
    status = RunDirectory(tmp_path).status()
    assert (status.state, status.epoch, status.global_step, status.world_size) == (state, 3, 30, 2)
    assert status.error.startswith(type(exception).__name__) and status.metrics == {"val/acc": 0.5}
    other_rank = SimpleNamespace(**{**vars(trainer), "is_global_zero": False})
    RecordRun(RunDirectory(tmp_path / "x")).on_exception(other_rank, None, exception)
    assert RunDirectory(tmp_path / "x").status() is None  # only the global-zero process writes


def test_a_status_file_round_trips_in_strict_json_and_a_garbled_one_reads_as_failed(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.status() is None
    lock = run.hold("lc-train fit")
    run.write_status(RunStatus("running", epoch=0, global_step=0, metrics={"val/acc": 0.25, "val/loss": math.nan}))
    status = run.status()
    assert (status.state, status.epoch, status.metrics["val/acc"]) == ("running", 0, 0.25)
    assert math.isnan(status.metrics["val/loss"]) and status.updated.endswith("+00:00")
    strict = json.loads((tmp_path / "status.json").read_text(), parse_constant=pytest.fail)
    assert strict["metrics"]["val/loss"] == "nan"
    run.let_go(lock)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.lock", "status.json"]  # no temporary file left
    (tmp_path / "status.json").write_text('{"state": "fini')
    garbled = run.status()
    assert garbled.state == "failed" and "unreadable" in garbled.error


def test_new_runs_are_numbered_or_named_after_their_slurm_job(tmp_path, monkeypatch):
    for name in ("SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    run, created = RunDirectory.claim_new_run(tmp_path / "x" / "y", under_slurm=False)
    assert (run.path, created) == (tmp_path / "x" / "y" / "version_0", tmp_path / "x") and run.path.is_dir()
    for name in ("version_2", "slurm-7", "validate_9"):
        (tmp_path / "x" / "y" / name).mkdir()
    run, created = RunDirectory.claim_new_run(tmp_path / "x" / "y", under_slurm=False)
    assert run.path.name == created.name == "version_3"
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert RunDirectory.claim_new_run(tmp_path, under_slurm=True)[0].path.name == "slurm-123"
    assert RunDirectory.claim_new_run(tmp_path, under_slurm=True)[1] is None  # a requeued job's, there already
    monkeypatch.setenv("SLURM_STEP_ID", "2")  # a job's third srun
    assert RunDirectory.of_slurm_job(tmp_path).path.name == "slurm-123.2"
    monkeypatch.setenv("SLURM_STEP_ID", "0")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "120")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert RunDirectory.of_slurm_job(tmp_path).path.name == "slurm-120_3"


def test_a_run_is_created_with_its_config_a_trained_one_keeps_it_and_a_discarded_one_leaves_nothing(tmp_path):
    (tmp_path / "logs").mkdir()
    run, created = RunDirectory.claim_new_run(tmp_path / "logs" / "table1" / "x", under_slurm=False)
    run.create("a: 1\n")
    assert created == tmp_path / "logs" / "table1" and run.exists() and run.config() == {"a": 1}
    run.create("a: 2\n")  # not trained yet: lc-sweep may give it the grid's new config
    assert run.config_text() == "a: 2\n"
    sibling, sibling_created = RunDirectory.claim_new_run(tmp_path / "logs" / "table1" / "x", under_slurm=False)
    sibling.create("b: 1\n")
    run.discard(created)
    assert not run.path.exists() and sibling.exists()  # what the failed start made, nothing else
    sibling.discard(sibling_created)
    assert sorted(p.name for p in (tmp_path / "logs" / "table1" / "x").iterdir()) == []
    sibling.create("b: 1\n")
    sibling.write_status(RunStatus("finished"))
    with pytest.raises(InvalidArgumentError, match="holds a run that has trained"):
        sibling.create("b: 2\n")
    assert sibling.config_text() == "b: 1\n"
    assert RunDirectory.containing(sibling.path / "checkpoints" / "last.ckpt") == sibling
    assert RunDirectory.containing(tmp_path / "elsewhere.ckpt") is None


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640)])
def test_every_file_of_a_run_follows_the_umask(tiny_cifar10, tmp_path, monkeypatch, umask, mode):
    monkeypatch.chdir(tmp_path)
    previous = os.umask(umask)
    try:
        build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=1")])
        build_cli(["validate", f"--ckpt_path={tmp_path.joinpath(RUN, 'checkpoints', 'last.ckpt')}"])
    finally:
        os.umask(previous)
    files = [path for path in tmp_path.joinpath(RUN).rglob("*") if path.is_file()]
    assert {"status.json", "config.yaml", "last.ckpt", "hparams.yaml"} <= {path.name for path in files}
    assert {path.relative_to(tmp_path): stat.S_IMODE(path.stat().st_mode) for path in files} == {
        path.relative_to(tmp_path): mode for path in files
    }


def record_hashes(run_dir: Path) -> dict[str, str]:
    """The hash of every file of the run's own record (its evaluations' folders left out)."""
    return file_hashes(run_dir, leave_out=("validate_", "test_"))


def test_evaluating_a_run_never_changes_its_record_and_starts_from_its_config(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    overrides = ["--model.network.init_args.expansion=2", "--data.train_subset=24", "--data.val_subset=6"]
    build_cli(["fit", *tiny_cifar_args(root, "--trainer.max_epochs=2", "--trainer.callbacks=null", *overrides)])
    run = RunDirectory(tmp_path.joinpath(RUN))
    before = record_hashes(run.path)
    assert {"config.yaml", "hparams.yaml", "status.json", "checkpoints/last.ckpt"} <= set(before)
    ckpt = str(run.checkpoint_dir / "last.ckpt")
    # the checkpoint alone: the run's own config (expansion 2, 6 validation images), its val/acc
    alone = build_cli(["validate", f"--ckpt_path={ckpt}"])
    assert alone.trainer.callback_metrics["val/acc"].item() == run.status().metrics["val/acc"]
    assert len(alone.datamodule.val_set[1]) == 6  # the device loader's (images, labels)
    # extra configs and options on top: the analysis callbacks, another subset, the test split
    build_cli(["validate", f"--ckpt_path={ckpt}", "--trainer.callbacks", ANALYSIS, "--data.val_subset=4"])
    build_cli(["test", f"--ckpt_path={ckpt}", "--config", ANALYSIS.replace("callbacks/analysis", "trainer/cpu")])
    assert record_hashes(run.path) == before
    evaluations = run.evaluations()
    assert [evaluation.path.name for evaluation in evaluations] == ["validate_0", "validate_1", "test_0"]
    first, second, test = (evaluation.status() for evaluation in evaluations)
    assert first.state == second.state == test.state == "finished"
    assert (first.epoch, first.global_step) == (test.epoch, test.global_step) == (1, 6)  # the checkpoint's
    assert first.metrics["val/acc"] == run.status().metrics["val/acc"] and "val/fgsm_acc" not in first.metrics
    assert "val/fgsm_acc" in second.metrics and "test/acc" in test.metrics
    assert evaluations[1].config()["data"]["init_args"]["val_subset"] == 4
    assert evaluations[1].config()["ckpt_path"] == ckpt
    assert list(evaluations[1].path.glob("events.out.tfevents.*"))  # its TensorBoard events are its own
    out = capsys.readouterr().out
    assert f"lc-train: validate results in {evaluations[0].path} (" in out
    assert f"lc-train: test results in {evaluations[2].path} (" in out


def test_load_from_checkpoint_gives_the_trained_modules_logits_and_optimizer(tiny_cifar10, tmp_path, monkeypatch):
    """A module trained by lc-train with an optimizer of the command line (its weight decay carried over from
    PaperSGD's option) comes back from its checkpoint with the same logits, optimizer and schedule, and the
    checkpoint loads with weights_only=True (plain numbers in the optimizer's state)."""
    monkeypatch.chdir(tmp_path)
    adamw = ["--model.optimizer.weight_decay=0.05", "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.003"]
    args = tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=1", "--trainer.callbacks=null", *adamw)
    cli = build_cli(["fit", *args])
    trained = cli.model.eval()
    ckpt = tmp_path.joinpath(RUN, "checkpoints", "last.ckpt")
    (group,) = torch.load(ckpt, weights_only=True)["optimizer_states"][0]["param_groups"]
    assert (group["initial_lr"], group["weight_decay"]) == (0.003, 0.05)
    loaded = ImageClassifier.load_from_checkpoint(ckpt).eval()
    images = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(images), trained(images))
    assert loaded.hparams.network.keywords["expansion"] == 32
    optimizer = loaded.optimizer([torch.nn.Parameter(torch.ones(1))])
    assert type(optimizer) is torch.optim.AdamW and (optimizer.defaults["lr"], optimizer.defaults["weight_decay"]) == (
        0.003, 0.05,
    )  # fmt: skip
    assert type(loaded.lr_scheduler(optimizer, 10)) is torch.optim.lr_scheduler.CosineAnnealingLR


def tree(path: Path) -> dict[str, str]:
    """Every file and folder under ``path``, with the hash of each file."""
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
        for p in sorted(path.rglob("*"))
    }


def fails(args: list[str]) -> bool:
    """Whether ``lc-train ARGS`` fails, with a non-zero exit status or an exception."""
    try:
        main(args)
    except SystemExit as exit_info:
        return exit_info.code not in (0, None)
    except Exception:  # noqa: BLE001 - what fails this way is issue enough here; its message is tested elsewhere
        return True
    return False


def test_starts_that_fail_leave_logs_as_they_were(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(root, "--trainer.max_epochs=1", "--trainer.callbacks=null")])
    ckpt = tmp_path.joinpath(RUN, "checkpoints", "last.ckpt")
    (tmp_path / "torn.ckpt").write_bytes(ckpt.read_bytes()[:1000])
    before = tree(tmp_path / "logs")
    fashion_mnist = "--data=lc_lightning.data.FashionMNISTDataModule"
    failing = {
        "an unknown key": ["fit", *tiny_cifar_args(root), "--model.expansoin=8"],
        "a model that cannot be built": ["fit", *tiny_cifar_args(root), "--model.network.init_args.expansion=0"],
        "a learning rate torch.optim refuses": [
            "fit",
            *tiny_cifar_args(root),
            "--model.optimizer=torch.optim.AdamW",
            "--model.optimizer.lr=-0.1",
        ],
        "a missing dataset": ["fit", *tiny_cifar_args(tmp_path / "nowhere")],
        "a failed download": ["fit", *tiny_cifar_args(tmp_path / "empty"), "--data.download=true"],
        "a torn checkpoint": ["validate", f"--ckpt_path={tmp_path / 'torn.ckpt'}", *tiny_cifar_args(root)],
        "another dataset's model": ["validate", f"--ckpt_path={ckpt}", fashion_mnist],
    }
    for what, args in failing.items():
        assert fails(args), what
        assert tree(tmp_path / "logs") == before, what
    capsys.readouterr()


def test_a_checkpoint_that_does_not_fit_names_the_config_it_was_trained_with(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=1", "--trainer.callbacks=null")])
    ckpt = tmp_path.joinpath(RUN, "checkpoints", "last.ckpt")
    err = usage_error(capsys, "validate", f"--ckpt_path={ckpt}", "--data=lc_lightning.data.FashionMNISTDataModule")
    config = tmp_path.joinpath(RUN, "config.yaml")
    assert f"checkpoint {ckpt} does not fit the model this config builds (" in err
    assert f"It was trained with {config}: validate it with --ckpt_path alone" in err
    assert err.count("\n") == 1


def test_an_evaluation_starts_from_the_runs_config_on_this_machines_devices(tmp_path):
    run = RunDirectory(tmp_path / "version_0")
    run.create("trainer: {devices: 4, num_nodes: 2}\n")  # trained on two nodes of 4 GPUs
    ckpt = str(run.checkpoint_dir / "last.ckpt")
    own = ["--config", str(run.config_file), "--trainer.devices=auto", "--trainer.num_nodes=1"]
    assert with_evaluated_run_config(["test", "--ckpt_path", ckpt, "--trainer.devices=1"]) == (
        ["test", *own, "--ckpt_path", ckpt, "--trainer.devices=1"],
        run,
    )
    assert with_evaluated_run_config(["validate", f"--ckpt_path={ckpt}"]) == (
        ["validate", *own, f"--ckpt_path={ckpt}"],
        run,
    )
    assert with_evaluated_run_config(["fit", f"--ckpt_path={ckpt}"]) is None
    assert with_evaluated_run_config(["validate", f"--ckpt_path={tmp_path / 'elsewhere.ckpt'}"]) is None


def test_a_write_removes_the_partial_files_of_writers_that_are_gone(tmp_path):
    host = socket.gethostname()
    gone = subprocess.Popen(["true"])
    gone.wait()  # a pid of this host that no process has now
    partial = {
        "gone": tmp_path / f".status.json.{host}.{gone.pid}.0a.partial",
        "alive": tmp_path / f".status.json.{host}.{os.getpid()}.0b.partial",  # a writer still at it
        "elsewhere": tmp_path / f".status.json.node-7.{os.getpid()}.0c.partial",  # a host this one cannot ask
    }
    for path in partial.values():
        path.write_bytes(b"torn")
    write_atomically(tmp_path / "status.json", lambda file: file.write(b"{}"))
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        [partial["alive"].name, partial["elsewhere"].name, "status.json"]
    )
    write_atomically(tmp_path / "status.json", lambda file: file.write(b"{}"), sole_writer=True)  # the run's holder
    assert [path.name for path in tmp_path.iterdir()] == ["status.json"]
