"""A fit keeps its run directory's status.json: running, finished, failed (with the error) or interrupted."""

from types import SimpleNamespace

import pytest
from lightning.pytorch.utilities.exceptions import SIGTERMException
from test_faults import lc_train_error, tiny_cifar_args

from lc_lightning.callbacks import RecordRunStatus
from lc_lightning.cli import build_cli
from lc_lightning.run_status import RunStatus, read_status, write_status

RUN_DIR = ("logs", "cifar10_e32", "version_0")


def test_a_fit_that_ends_normally_is_finished_at_its_last_step(tiny_cifar10, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=2")])
    status = read_status(tmp_path.joinpath(*RUN_DIR))
    assert (status.state, status.error, status.epoch, status.global_step) == ("finished", None, 2, 10)


def test_a_fit_that_raises_is_failed_with_its_error(tiny_cifar10, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    nan_network = ["--model.network=faulty_networks.NaNAfterSteps", "--model.network.init_args.nan_from=7"]
    args = [*tiny_cifar_args(tiny_cifar10[0]), *nan_network, "--trainer.max_epochs=3"]
    args.remove("--model.network.init_args.depth=8")
    lc_train_error(capsys, "fit", *args)
    status = read_status(tmp_path.joinpath(*RUN_DIR))
    assert status.state == "failed" and status.epoch == 1
    assert status.error.startswith(
        "TrainingDivergedError: the training loss is not finite (nan on this rank) at step 7"
    )


@pytest.mark.parametrize(
    "wrong, error",
    [("--model.network.init_args.expansion=0", "InvalidArgumentError: expansion must be an integer >= 1"),
     ("--data.init_args.train_subset=0", "InvalidArgumentError: train_subset must be >= 1, got 0")],
)  # fmt: skip
def test_a_run_that_cannot_be_built_is_failed_with_its_error(tiny_cifar10, tmp_path, monkeypatch, capsys, wrong, error):
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(tiny_cifar10[0], wrong)
    assert error.partition(": ")[2] in lc_train_error(capsys, "fit", *args)
    assert not tmp_path.joinpath(*RUN_DIR).exists()  # a new run that never started leaves no directory
    tmp_path.joinpath(*RUN_DIR).mkdir(parents=True)  # a sweep's run: its directory holds its config
    lc_train_error(capsys, "fit", *args, "--trainer.logger.init_args.version=0")
    status = read_status(tmp_path.joinpath(*RUN_DIR))
    assert status.state == "failed" and status.error.startswith(error)


@pytest.mark.parametrize(
    "exception, state",
    [(KeyboardInterrupt(), "interrupted"), (SIGTERMException(), "interrupted"),
     (RuntimeError("CUDA out of memory"), "failed")],
)  # fmt: skip
def test_ctrl_c_and_sigterm_interrupt_a_run_other_exceptions_fail_it(tmp_path, exception, state):
    trainer = SimpleNamespace(is_global_zero=True, current_epoch=3, global_step=30, default_root_dir=str(tmp_path))
    RecordRunStatus().on_exception(trainer, None, exception)
    status = read_status(tmp_path)
    assert (status.state, status.epoch, status.global_step) == (state, 3, 30)
    assert status.error.startswith(type(exception).__name__)
    other_rank = SimpleNamespace(**{**vars(trainer), "is_global_zero": False, "default_root_dir": str(tmp_path / "x")})
    RecordRunStatus().on_exception(other_rank, None, exception)
    assert read_status(tmp_path / "x") is None  # only the global-zero process writes


def test_a_status_file_round_trips_and_a_garbled_one_reads_as_failed(tmp_path):
    assert read_status(tmp_path) is None
    write_status(tmp_path, RunStatus("running", epoch=0, global_step=0))
    status = read_status(tmp_path)
    assert (status.state, status.epoch) == ("running", 0) and status.updated.endswith("+00:00")
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]  # no temporary file left
    (tmp_path / "status.json").write_text('{"state": "fini')
    garbled = read_status(tmp_path)
    assert garbled.state == "failed" and "unreadable" in garbled.error
