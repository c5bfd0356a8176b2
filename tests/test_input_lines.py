"""One line and exit status 2 for mistakes around runs, grid files and lists of values: the run's
own config.yaml under ``validate --ckpt_path``, a grid file given to lc-train, a directory given as
``--ckpt_path``, the ``predict`` subcommand lc-train does not have, and "2, 4" for one value. Each
case also checks that nothing was written."""

from pathlib import Path

import pytest
from helpers.cli import CONFIGS, usage_error

from lc_lightning.cli import main
from lc_lightning.sweep import cli as sweep_cli

QUICKSTART = str(CONFIGS / "quickstart.yaml")
SWEEP_BASE = str(CONFIGS / "sweeps" / "base.yaml")
RUN = Path("logs") / "lc-train" / "version_0"
LAST = RUN / "checkpoints" / "last.ckpt"
RUN_CONFIG_HEAD = "seed_everything: 0\ntrainer:\n  accelerator: cpu\n"  # how a run's config.yaml begins


def files_under(path: Path) -> list[Path]:
    return sorted(found.relative_to(path) for found in path.rglob("*"))


def error_line(capsys, command, *args: str) -> str:
    """The one line ``command(ARGS)`` writes to stderr, checked to end the process with status 2, no usage
    or traceback, and to write nothing under the working directory."""
    before = files_under(Path.cwd())
    err = usage_error(capsys, *args, command=command)
    assert len(err.splitlines()) == 1, err
    assert files_under(Path.cwd()) == before
    return err.rstrip("\n")


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def make_run(config: str, checkpoints: tuple[str, ...] = ("last.ckpt",)) -> Path:
    """A run directory ``logs/lc-train/version_0`` with ``config`` as its config.yaml and empty
    checkpoint files named ``checkpoints`` (nothing here reads them: the errors come first)."""
    (RUN / "checkpoints").mkdir(parents=True)
    (RUN / "config.yaml").write_text(config)
    for name in checkpoints:
        (RUN / "checkpoints" / name).touch()
    return RUN.resolve() / "config.yaml"


def test_a_run_config_with_a_yaml_error_is_named_with_its_line_under_validate(capsys, workdir):
    config = make_run(RUN_CONFIG_HEAD + "  max_ep")  # cut in the middle of a key
    assert error_line(capsys, main, "validate", "--ckpt_path", str(LAST)) == (
        f"lc-train: error: {config}:4:9: invalid YAML: could not find expected ':' "
        "(the config of the run whose checkpoint --ckpt_path names)"
    )


def test_an_empty_run_config_is_named_under_test(capsys, workdir):
    config = make_run("")
    assert error_line(capsys, main, "test", f"--ckpt_path={LAST}") == (
        f"lc-train: error: {config} is empty: an lc-train config is a mapping of options (model:, data:...) "
        "(the config of the run whose checkpoint --ckpt_path names)"
    )


def test_a_run_config_cut_at_the_end_of_a_line_is_named_for_what_it_lacks(capsys, workdir):
    config = make_run(RUN_CONFIG_HEAD)  # valid YAML, but without model and data
    assert error_line(capsys, main, "validate", "--ckpt_path", str(LAST), "--trainer.limit_val_batches=2") == (
        "lc-train: error: the following arguments are required: validate.model.network, validate.data; "
        f"check {config}, the config of the run whose checkpoint --ckpt_path names"
    )
    # an option of the user's own is not blamed on the run's config
    assert error_line(capsys, main, "validate", "--ckpt_path", str(LAST), "--model.netwrk=CifarResNet") == (
        "lc-train: error: unknown option --model.netwrk; did you mean --model.network? "
        "(lc-train fit --help lists the options)"
    )


@pytest.mark.parametrize("grid", ["figure4.yaml", "figure1.yaml"])
def test_a_grid_file_given_to_lc_train_says_to_run_it_with_lc_sweep(capsys, workdir, grid):
    path = CONFIGS / "grids" / grid
    assert error_line(capsys, main, "fit", "--config", str(path)) == (
        f"lc-train: error: {path} is an lc-sweep grid file (configs, grid, report), not an lc-train config: "
        f"run its grid with lc-sweep {path}"
    )


def test_a_config_that_is_a_list_is_named(capsys, workdir):
    Path("callbacks.yaml").write_text("- class_path: lightning.pytorch.callbacks.RichModelSummary\n")
    assert error_line(capsys, main, "fit", "--config", QUICKSTART, "--config", "callbacks.yaml") == (
        "lc-train: error: callbacks.yaml holds a list, not a mapping of options (model:, data:...) as an lc-train "
        "config does"
    )


@pytest.mark.parametrize(
    "checkpoints, given, advice",
    [
        (("last.ckpt", "epoch=0-step=5.ckpt"), RUN,
         f"{RUN} is a run directory, not a checkpoint file: give {LAST}"),
        (("last.ckpt",), RUN / "checkpoints",
         f"{RUN / 'checkpoints'} is a directory, not a checkpoint file: give {LAST}"),
        (("epoch=0-step=5.ckpt", "epoch=1-step=10.ckpt"), RUN,
         f"{RUN} is a run directory, not a checkpoint file: give one of its checkpoints, "
         f"{RUN / 'checkpoints' / 'epoch=0-step=5.ckpt'}, {RUN / 'checkpoints' / 'epoch=1-step=10.ckpt'}"),
        ((), RUN, f"{RUN} is a run directory that holds no checkpoint (*.ckpt): the run saved none"),
        (("last.ckpt",), RUN.parent,
         f"{RUN.parent} is a folder of 1 run(s), not a checkpoint file: give one run's checkpoints/last.ckpt, "
         f"e.g. {LAST}"),
    ],
    ids=["run", "checkpoints-folder", "run-without-last", "run-without-checkpoints", "folder-of-runs"],
)  # fmt: skip
@pytest.mark.parametrize("subcommand", ["validate", "fit"])
def test_a_directory_as_ckpt_path_says_which_file_to_give(capsys, workdir, checkpoints, given, advice, subcommand):
    make_run(RUN_CONFIG_HEAD, checkpoints)
    args = [subcommand, "--ckpt_path", str(given)]
    if subcommand == "fit":
        args[1:1] = ["--config", QUICKSTART]
    assert error_line(capsys, main, *args) == f"lc-train: error: --ckpt_path {advice}"


def test_a_directory_as_ckpt_path_in_a_config_file_says_which_file_to_give(capsys, workdir):
    make_run(RUN_CONFIG_HEAD)
    Path("resume.yaml").write_text(f"ckpt_path: {RUN}\n")
    assert error_line(capsys, main, "fit", "--config", QUICKSTART, "--config", "resume.yaml") == (
        f"lc-train: error: --ckpt_path {RUN} is a run directory, not a checkpoint file: give {LAST}"
    )


@pytest.mark.parametrize("args", [["predict"], ["predict", "--config", QUICKSTART]], ids=["alone", "with-a-config"])
def test_predict_is_no_subcommand(capsys, workdir, args):
    assert error_line(capsys, main, *args) == (
        "lc-train: error: unknown subcommand 'predict' (choose from fit, validate, test)"
    )


def test_the_help_lists_no_predict(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "{fit,validate,test}" in out and "predict" not in out


EXPANSION = "model.network.init_args.expansion"
ONE_VALUE = (
    f"--{EXPANSION}: expected an int or null, got '2, 4' (it takes one value; to train one run per value, give "
    f"lc-sweep the list [2, 4] in a grid file or --axis {EXPANSION}=2,4)"
)


def test_two_values_for_one_option_of_lc_train_say_how_to_sweep_them(capsys, workdir):
    assert error_line(capsys, main, "fit", "--config", SWEEP_BASE, f"--{EXPANSION}=2, 4", "--print_config") == (
        f"lc-train: error: {ONE_VALUE}"
    )


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model.network.init_args.depth=8, 14"], "--model.network.init_args.depth: expected an int, got '8, 14' "
         "(it takes one value; to train one run per value, give lc-sweep the list [8, 14] in a grid file or "
         "--axis model.network.init_args.depth=8,14)"),
        (["--data.init_args.train_subset=100,200"], "--data.init_args.train_subset: expected an int or null, got "
         "'100,200' (it takes one value; to train one run per value, give lc-sweep the list [100, 200] in a grid "
         "file or --axis data.init_args.train_subset=100,200)"),
        (["--trainer.limit_train_batches=abc"], "--trainer.limit_train_batches: expected a float, an int or null, "
         "got 'abc'"),
        (["--seed_everything=abc"], "--seed_everything: expected a bool or an int, got 'abc'"),
        (["--model.network.init_args.kernel_size=a"], "--model.network.init_args.kernel_size: expected an int, "
         "got 'a'"),
    ],
)  # fmt: skip
def test_a_value_of_the_wrong_type_gets_one_line(capsys, workdir, args, expected):
    assert error_line(capsys, main, "fit", "--config", SWEEP_BASE, *args, "--print_config") == (
        f"lc-train: error: {expected}"
    )


def test_two_values_in_one_grid_value_name_the_run_and_say_how_to_write_a_list(capsys, workdir):
    Path("grid.yaml").write_text(f'configs: [{SWEEP_BASE}]\ngrid:\n  {EXPANSION}: "2, 4"\n  seed_everything: [0, 1]\n')
    assert error_line(capsys, sweep_cli.main, "grid.yaml", "--dir", "sweep") == (
        f"lc-sweep: error: run seed_everything=0: lc-train rejects its config: {ONE_VALUE}"
    )


def test_two_quoted_values_on_axis_name_the_run_and_say_how_to_write_a_list(capsys, workdir):
    args = ["--config", SWEEP_BASE, "--axis", f'{EXPANSION}="2, 4"', "--axis", "seed_everything=0,1", "--dir", "sweep"]
    assert error_line(capsys, sweep_cli.main, *args) == (
        f"lc-sweep: error: run seed_everything=0: lc-train rejects its config: {ONE_VALUE}"
    )


def test_an_axis_or_grid_file_that_is_not_yaml_gets_one_line(capsys, workdir):
    args = ["--config", SWEEP_BASE, "--axis", f"{EXPANSION}=[2, 4", "--dir", "sweep"]
    assert error_line(capsys, sweep_cli.main, *args) == (
        f"lc-sweep: error: --axis '{EXPANSION}=[2, 4': its values are not valid YAML (expected ',' or ']', but got "
        "'<stream end>'); write it as KEY=VALUE1,VALUE2 or KEY=[VALUE1, VALUE2]"
    )
    Path("grid.yaml").write_text(f"configs: [{SWEEP_BASE}]\ngrid:\n  {EXPANSION}: [2, 4\n")
    assert error_line(capsys, sweep_cli.main, "grid.yaml", "--dir", "sweep") == (
        "lc-sweep: error: grid.yaml:4:1: invalid YAML: expected ',' or ']', but got '<stream end>'"
    )
