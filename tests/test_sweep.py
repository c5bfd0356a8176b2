"""lc-sweep's parts: grids and run names, the sweep directory, SLURM array specs, the grid files of configs/grids."""

import copy
import os
import time
from pathlib import Path

import pytest
import yaml
from helpers.cli import CONFIGS, config_args

from lc_lightning.errors import InvalidArgumentError, UserInputError
from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.sweep.cli import main as lc_sweep
from lc_lightning.sweep.directory import open_sweep_directory, read_sweep_directory
from lc_lightning.sweep.fit_config import FitConfigParser
from lc_lightning.sweep.grid import Sweep, load_sweep
from lc_lightning.sweep.slurm import array_spec, submit_array

GRIDS = sorted((CONFIGS / "grids").glob("*.yaml"))
EXPANSION = "model.network.init_args.expansion"
LR = "model.optimizer.init_args.lr"


def write_grid(path: Path, definition: dict) -> Path:
    path.write_text(yaml.safe_dump(definition, sort_keys=False))
    return path


def test_runs_are_the_union_of_the_grids_products_named_by_the_axes_that_vary(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", {"grid": [
        {EXPANSION: [1, 8], "model.freeze_spatial": [True, False], "seed_everything": [0, 1], LR: 0.1},
        {EXPANSION: [None], "model.freeze_spatial": [False], "seed_everything": [0, 1], LR: 0.1},
    ]})  # fmt: skip
    sweep = load_sweep(grid, [], [])
    runs = sweep.runs()
    assert len(runs) == 2 * 2 * 2 + 2
    assert sweep.varying_axes() == [EXPANSION, "model.freeze_spatial", "seed_everything"]  # not the lr
    assert runs[0].name == "expansion=1,freeze_spatial=true,seed_everything=0"
    assert runs[0].values == {EXPANSION: 1, "model.freeze_spatial": True, "seed_everything": 0, LR: 0.1}
    assert runs[-1].name == "expansion=null,freeze_spatial=false,seed_everything=1"
    assert len({run.name for run in runs}) == len(runs)


def test_axes_from_the_command_line_extend_every_grid_and_override_its_values(tmp_path):
    grid = write_grid(tmp_path / "grid.yaml", {"grid": {EXPANSION: [1, 2], "seed_everything": [0, 1, 2]}})
    sweep = load_sweep(grid, [], ["seed_everything=0", "model.init=[orthogonal, binary]", "trainer.max_epochs=3"])
    assert [run.name for run in sweep.runs()] == [
        f"expansion={e},init={init}" for e in (1, 2) for init in ("orthogonal", "binary")
    ]
    assert {run.values["trainer.max_epochs"] for run in sweep.runs()} == {3}
    values = load_sweep(None, [], ["a.b=1,null,true,x"]).grids[0]["a.b"]
    assert values == [1, None, True, "x"]  # each value read as YAML


def test_config_files_as_values_are_named_by_their_file_and_read_relative_to_the_grid(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("cifar10", "svhn"):
        (tmp_path / "data" / f"{name}.yaml").write_text("class_path: x\n")
    grid = write_grid(tmp_path / "grid.yaml", {"grid": {"data": ["data/cifar10.yaml", "data/svhn.yaml"]}})
    runs = load_sweep(grid, [], []).runs()
    assert [run.name for run in runs] == ["data=cifar10", "data=svhn"]
    assert runs[0].values["data"] == str(tmp_path / "data" / "cifar10.yaml")


def test_run_names_depend_on_the_values_alone(tmp_path):
    moved = str(tmp_path / "elsewhere" / "cifar10.yaml")  # a config file no longer where it was
    sweep = Sweep((), ({"data": [moved], LR: [1e-3, 0.1]},))
    assert [run.name for run in sweep.runs()] == ["lr=0.001", "lr=0.1"]
    assert Sweep((), ({"data": [moved, "/x/svhn.yml"]},)).runs()[0].name == "data=cifar10"
    assert load_sweep(None, [], [f"{LR}=1e-3,2E+2"]).grids[0][LR] == [0.001, 200.0]  # YAML 1.1: strings


def test_two_axes_ending_alike_are_named_in_full():
    sweep = Sweep((), ({"model.network.init_args.init": ["a", "b"], "model.init": ["c", "d"]},))
    assert sweep.runs()[0].name == "model.network.init_args.init=a,model.init=c"


def test_runs_that_would_share_a_directory_are_refused():
    sweep = Sweep((), ({"data.init_args.data_dir": ["a/b", "a-b"]},))
    with pytest.raises(InvalidArgumentError, match="share the directory 'data_dir=a-b'"):
        sweep.runs()


@pytest.mark.parametrize(
    "definition, axes, message",
    [
        ({"grid": {"a": [1]}, "reprot": {}}, [], r"unknown key\(s\) \['reprot'\]"),
        ({"grid": {"a": [1]}, "report": {"xx": "a"}}, [], r"unknown report key\(s\) \['xx'\]"),
        ({"grid": {"a": [1, 2]}, "report": {"x": "b"}}, [], "report.x 'b' is not an axis"),
        ({"grid": {"a": []}}, [], "the axis a has no values"),
        ({"configs": ["missing.yaml"], "grid": {"a": [1]}}, [], "config file missing.yaml not found"),
        ({}, [], "the sweep has no axes"),
        ({"grid": {"a": [1]}}, ["b"], "write it as KEY=VALUE1,VALUE2"),
    ],
)
def test_a_bad_grid_is_refused_with_what_to_fix(tmp_path, definition, axes, message):
    with pytest.raises(InvalidArgumentError, match=message):
        load_sweep(write_grid(tmp_path / "grid.yaml", definition), [], axes)


def test_sbatch_options_that_would_hide_the_sweeps_jobs_are_refused(tmp_path):
    for option in ("--array=0-3", "--comment=mine", "-a"):
        with pytest.raises(UserInputError, match=f"sbatch option {option}: lc-sweep sets it"):
            submit_array(tmp_path, [0], tmp_path / "script.sbatch", ["--time=10", option])


def test_array_specs_group_consecutive_tasks():
    assert array_spec([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert array_spec([4]) == "4"
    assert array_spec([3, 1, 2]) == "1-3"


def tiny_sweep(tmp_path: Path, *axes: str) -> Sweep:
    return load_sweep(None, [str(CONFIGS / "sweeps" / "base.yaml")], list(axes))


def test_a_sweep_directory_holds_each_runs_complete_config_and_the_run_list(tmp_path):
    sweep = tiny_sweep(tmp_path, "model.network.init_args.expansion=2,4", "trainer.max_epochs=3")
    directory = open_sweep_directory(tmp_path / "sweep", sweep)
    assert (tmp_path / "sweep" / "runs.txt").read_text() == "expansion=2\nexpansion=4\n"
    config = directory.run_dir(directory.runs[1]).config()
    assert config["model"]["network"]["init_args"]["expansion"] == 4 and config["trainer"]["max_epochs"] == 3
    assert config["trainer"]["default_root_dir"] == str(tmp_path / "sweep" / "expansion=4")
    logger = config["trainer"]["logger"]["init_args"]
    assert Path(logger["save_dir"], logger["name"], logger["version"]) == tmp_path / "sweep" / "expansion=4"
    assert read_sweep_directory(tmp_path / "sweep").runs == directory.runs
    assert directory.train_arguments(directory.runs[0]) == [
        "fit", "--config", str(tmp_path / "sweep" / "expansion=2" / "config.yaml"), "--ckpt_path", "last",
    ]  # fmt: skip


def test_a_directory_holding_another_grid_is_refused(tmp_path):
    open_sweep_directory(tmp_path / "sweep", tiny_sweep(tmp_path, "model.network.init_args.expansion=2,4"))
    open_sweep_directory(tmp_path / "sweep", tiny_sweep(tmp_path, "model.network.init_args.expansion=2,4"))
    with pytest.raises(InvalidArgumentError, match="holds another sweep"):
        open_sweep_directory(tmp_path / "sweep", tiny_sweep(tmp_path, "model.network.init_args.expansion=2,8"))
    assert (tmp_path / "sweep" / "runs.txt").read_text() == "expansion=2\nexpansion=4\n"


def test_the_same_axes_in_another_order_are_another_sweep(tmp_path):
    open_sweep_directory(
        tmp_path / "sweep", tiny_sweep(tmp_path, "model.network.init_args.expansion=2,4", "seed_everything=0,1")
    )
    with pytest.raises(InvalidArgumentError, match="holds another sweep"):
        open_sweep_directory(
            tmp_path / "sweep", tiny_sweep(tmp_path, "seed_everything=0,1", "model.network.init_args.expansion=2,4")
        )


def test_a_run_that_trained_keeps_its_config_the_others_take_the_grids_new_one(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text((CONFIGS / "sweeps" / "base.yaml").read_text().replace("../", f"{CONFIGS}/"))
    axes = ["--axis", "model.network.init_args.expansion=2,4"]
    directory = open_sweep_directory(tmp_path / "sweep", load_sweep(None, [str(base)], axes[1::2]))
    trained, untrained = (directory.run_dir(run) for run in directory.runs)
    trained.write_status(RunStatus("finished"))
    base.write_text(base.read_text().replace("width: 16", "width: 32"))
    reopened = open_sweep_directory(tmp_path / "sweep", load_sweep(None, [str(base)], axes[1::2]))
    assert reopened.config_changes == {trained.path.name: ["model.network.init_args.width"]}
    width = {d.path.name: d.config()["model"]["network"]["init_args"]["width"] for d in (trained, untrained)}
    assert width == {trained.path.name: 16, untrained.path.name: 32}


def test_a_config_typo_stops_the_sweep_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        lc_sweep(["--config", str(CONFIGS / "sweeps" / "base.yaml"), "--axis", "model.network.init_args.expanson=1,2",
                  "--dir", str(tmp_path / "sweep")])  # fmt: skip
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("lc-sweep: error: run expanson=1: lc-train rejects its config") and "expanson" in error
    assert not (tmp_path / "sweep").exists()


def test_resuming_takes_the_newest_of_the_last_and_requeue_checkpoints(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.newest_checkpoint() is None
    run.checkpoint_dir.mkdir()
    last, requeue = run.checkpoint_dir / "last.ckpt", run.requeue_checkpoint
    last.touch()
    requeue.touch()
    now = time.time()
    os.utime(last, (now - 60, now - 60))
    assert run.newest_checkpoint() == requeue
    os.utime(requeue, (now - 120, now - 120))
    assert run.newest_checkpoint() == last


@pytest.fixture(scope="module")
def parser() -> FitConfigParser:
    return FitConfigParser()


def printed(parser: FitConfigParser, args: list[str]) -> dict:
    """The run's config without where it is logged (which lc-sweep sets per run)."""
    config = yaml.safe_load(parser.fit_config(args))
    config["trainer"]["logger"]["init_args"].update(save_dir=None, name=None, version=None)
    config["trainer"]["default_root_dir"] = None
    return config


def grid_runs(grid: Path, tmp_path: Path, parser: FitConfigParser) -> dict[str, dict]:
    """Each run of the grid file (seed 0 only) by name, as ``printed``."""
    directory = open_sweep_directory(tmp_path / grid.stem, load_sweep(grid, [], ["seed_everything=0"]))
    return {run.name: printed(parser, ["--config", str(directory.run_dir(run).config_file)])
            for run in directory.runs}  # fmt: skip


@pytest.mark.slow
def test_grids_of_tables_1_2_and_figure_1_run_exactly_the_hand_written_cells(tmp_path, parser):
    modes = {(None, False): "baseline", (128, False): "lc_learnable", (128, True): "lc_frozen"}
    table1 = grid_runs(CONFIGS / "grids" / "table1.yaml", tmp_path, parser)
    assert len(table1) == 4 * 3
    for name, config in table1.items():
        values = dict(part.split("=") for part in name.split(","))
        mode = modes[(config["model"]["network"]["init_args"]["expansion"], config["model"]["freeze_spatial"])]
        assert config == printed(parser, config_args(CONFIGS / "table1" / f"{values['data']}_{mode}.yaml")), name
    for table, learned in (("table2", "learnable"), ("figure1", "learned")):
        cells = grid_runs(CONFIGS / "grids" / f"{table}.yaml", tmp_path, parser)
        expected = {p.stem for p in (CONFIGS / table).glob("*.yaml")} - {"base"}
        assert len(cells) == len(expected)
        for config in cells.values():
            network = config["model"]["network"]["init_args"]
            if table == "table2":
                stem = "baseline" if network["expansion"] is None else f"lc_x{network['expansion']}"
            else:
                stem = network["name"]
            cell = f"{stem}_{'frozen' if config['model']['freeze_spatial'] else learned}"
            assert config == printed(parser, config_args(CONFIGS / table / f"{cell}.yaml")), cell


FIGURE_AXES = {
    "figure4": {EXPANSION: [1, 2, 4, 8, 16, 32, 64, 128, None], "model.freeze_spatial": [True, False]},
    "figure4c": {"model.network.init_args.init": 7, EXPANSION: [1, 2, 4, 8, 16, 32, 64, 128]},
    "figure6a": {
        "model.network.init_args.width": [8, 16, 32, 64, 128],
        EXPANSION: [1, None],
        "model.freeze_spatial": [True, False],
    },
    "figure6b": {
        "model.network.init_args.depth": [20, 56, 110, 164, 260],
        EXPANSION: [1, None],
        "model.freeze_spatial": [True, False],
    },
    "figure7a": {"model.network.init_args.kernel_size": [3, 5, 7, 9], EXPANSION: [1, 2, 4, 8, 16, 32, 64, 128]},
    "figure4_beyond": {EXPANSION: [256, 512, 1024, 2048, 4096, 8192], "model.freeze_spatial": [True, False]},
    "figure4_step": {
        EXPANSION: [1, 2, 4, 8, 16, 32, 64, 128, 1024, 8192],
        "model.network.init_args.normalized_lc_step": [False, True],
    },
}


@pytest.mark.parametrize("figure", FIGURE_AXES)
@pytest.mark.slow
def test_figure_grids_change_only_their_axes_of_the_cifar10_base(figure, tmp_path, parser):
    base = printed(parser, ["--config", str(CONFIGS / "sweeps" / "base.yaml")])
    sweep = load_sweep(CONFIGS / "grids" / f"{figure}.yaml", [], [])
    assert {value for grid in sweep.grids for value in grid["seed_everything"]} == {0, 1, 2, 3}
    runs = grid_runs(CONFIGS / "grids" / f"{figure}.yaml", tmp_path, parser)
    for key, expected in FIGURE_AXES[figure].items():
        seen = list(dict.fromkeys(_get(config, key) for config in runs.values()))
        assert (len(seen) if isinstance(expected, int) else seen) == expected, key
    for name, config in runs.items():
        expected = copy.deepcopy(base)
        for key in sweep.varying_axes():
            if key != "seed_everything":
                _set(expected, key, _get(config, key))
        if _get(config, EXPANSION) is None:  # the baseline: every weight learned
            assert config["model"]["freeze_spatial"] is False, name
        # frozen random LC-Blocks are preconditioned (the folded trajectory at the baseline's cost);
        # learned ones cannot be (lc-train would refuse the run)
        lc_form = config["model"]["network"]["init_args"]["lc_form"]
        if _get(config, EXPANSION) is not None:
            assert (lc_form == "preconditioned") is config["model"]["freeze_spatial"], name
        assert config == expected, name


def _get(config: dict, key: str):
    for part in key.split("."):
        config = config[part]
    return config


def _set(config: dict, key: str, value) -> None:
    *parents, last = key.split(".")
    for part in parents:
        config = config[part]
    config[last] = value


def test_the_optimizers_grid_runs_paper_sgd_and_adamw_on_folded_lc_blocks(tmp_path, parser):
    runs = grid_runs(CONFIGS / "grids" / "optimizers.yaml", tmp_path, parser)
    assert len(runs) == 8 * 2 * 2
    seen = set()
    for name, config in runs.items():
        model = config["model"]
        optimizer = (model["optimizer"]["class_path"], model["optimizer"]["init_args"]["lr"])
        assert optimizer in {("lc_lightning.optim.PaperSGD", 0.01), ("torch.optim.AdamW", 0.001)}, name
        assert model["network"]["init_args"]["lc_form"] == "folded", name
        seen.add((optimizer[0], model["freeze_spatial"]))
    assert len(seen) == 4  # both optimizers, frozen and learned
