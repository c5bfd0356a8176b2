"""lc-report on synthetic sweep directories: final values, groups, mean and sample std, the paper's
numbers (checked against PAPER.md), unfinished runs, plots and the command line."""

import csv
import itertools
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.cli import CONFIGS
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer

from lc_lightning.report import paper
from lc_lightning.report.cli import main
from lc_lightning.report.config import config_value
from lc_lightning.report.plots import metric_figure, plot_axis
from lc_lightning.report.results import Stats, read_results
from lc_lightning.report.table import format_paper, format_stats, markdown_table, sweep_section
from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.sweep.fit_config import FitConfigParser
from lc_lightning.sweep.grid import Run, Sweep

PAPER_MD = Path(__file__).resolve().parents[1].parent / "shared" / "PAPER.md"
EXPANSION = "model.network.init_args.expansion"
FREEZE = "model.freeze_spatial"
SEED = "seed_everything"
FIGURE4_LABELS = {FREEZE: {True: "LC frozen random", False: "LC learnable"}, EXPANSION: {None: "baseline"}}


def write_sweep(path: Path, sweep: Sweep, config=None) -> dict[str, Path]:
    """Write the sweep directory ``path`` as lc-sweep does (sweep.yaml, runs.txt, each run's config.yaml
    from ``config(run)``, default a CIFAR-10 ResNet-20-16 run of 2 epochs); returns run name -> run dir."""
    runs = sweep.runs()
    path.mkdir(parents=True)
    record = {**sweep.record(), "runs": [run.name for run in runs]}
    (path / "sweep.yaml").write_text(yaml.safe_dump(record, sort_keys=False))
    (path / "runs.txt").write_text("".join(f"{run.name}\n" for run in runs))
    run_dirs = {}
    for run in runs:
        (path / run.name).mkdir()
        (path / run.name / "config.yaml").write_text(yaml.safe_dump((config or cifar10_config)(run)))
        run_dirs[run.name] = path / run.name
    return run_dirs


def cifar10_config(run: Run, data: str = "CIFAR10DataModule") -> dict:
    """lc-train's config of a CIFAR-ResNet run of 2 epochs: ResNet-20-16 but for the run's axis values."""
    network = {"depth": 20, "width": 16, "kernel_size": 3, "expansion": None, "init": "kaiming_uniform"}
    network.update({key.rpartition(".")[2]: value for key, value in run.values.items() if ".init_args." in key})
    return {
        SEED: run.values.get(SEED, 0),
        "trainer": {"max_epochs": 2},
        "model": {
            "network": {"class_path": "lc_lightning.models.CifarResNet", "init_args": network},
            "freeze_spatial": run.values.get(FREEZE, False),
        },
        "data": {"class_path": f"lc_lightning.data.{data}", "init_args": {"batch_size": 256}},
    }


def imagenet_config(expansion: int | None, frozen: bool) -> dict:
    """lc-train's config (the parts that matter) of a timm ResNet-18d run on ImageNet."""
    network = {"class_path": "lc_lightning.models.TimmNet", "init_args": {"name": "resnet18d", "expansion": expansion}}
    return {"model": {"network": network, "freeze_spatial": frozen},
            "data": {"class_path": "lc_lightning.data.ImageNetDataModule"}}  # fmt: skip


def finish(run_dir: Path, values: dict[str, float], state: str = "finished", error: str | None = None) -> None:
    """Write the run's status with ``values`` as the last value of each scalar it logged."""
    RunDirectory(run_dir).write_status(RunStatus(state, error=error, epoch=2, global_step=16, metrics=values))


def table_rows(report: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the Markdown table whose first header is ``first_header``, as header -> cell."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    table = list(itertools.takewhile(lambda line: line.startswith("|"), lines[start:]))
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in table]
    return [dict(zip(cells[0], row, strict=True)) for row in cells[2:]]


def test_format_of_cells():
    assert format_stats(Stats(0.923449, 0.00241, 2), "val/acc") == "92.34 ± 0.24"
    assert format_stats(Stats(0.5, None, 1), "val/fgsm_acc") == "50.00"
    assert format_stats(Stats(1.02345, 0.0109, 3), "filters/entropy_last") == "1.023 ± 0.011"
    assert format_stats(None, "val/acc") == "—"
    assert format_paper((93.5, 0.15)) == "93.50 ± 0.15"
    assert format_paper((72.31, None)) == "72.31"
    assert format_paper(None) == "—"


def test_paper_numbers_of_configs():
    def config(**values) -> dict:
        return cifar10_config(Run("run", {EXPANSION: 128, FREEZE: True, **values}))

    assert paper.paper_numbers(config()) == {"val/acc": (92.55, 0.28)}
    assert paper.paper_numbers(config(**{FREEZE: False})) == {"val/acc": (91.86, 0.34)}
    assert paper.paper_numbers(config(**{EXPANSION: None, FREEZE: False})) == {"val/acc": (92.34, 0.24)}
    assert paper.paper_numbers(config(**{EXPANSION: None})) == {}  # Table 1 has no frozen baseline
    assert paper.paper_numbers(config(**{EXPANSION: 64})) == {}
    deeper = config()
    deeper["model"]["network"]["init_args"]["depth"] = 56
    assert paper.paper_numbers(deeper) == {}
    assert paper.recipe_differences(config()) == {"trainer.max_epochs": (2, 75)}
    assert paper.recipe_differences(deeper) == {}  # not a Table 1 cell
    preconditioned = config()
    preconditioned["model"]["network"]["init_args"]["lc_form"] = "preconditioned"
    assert paper.paper_numbers(preconditioned) == {"val/acc": (92.55, 0.28)}  # the same run, computed otherwise
    normalized = config()
    normalized["model"]["network"]["init_args"]["normalized_lc_step"] = True
    assert paper.paper_numbers(normalized) == {}  # another recipe of the LC-Blocks' step
    svhn = cifar10_config(Run("run", {EXPANSION: 128, FREEZE: True}), data="SVHNDataModule")
    assert paper.paper_numbers(svhn) == {"val/acc": (96.27, 0.14)}

    def imagenet(expansion, frozen) -> dict:
        return imagenet_config(expansion, frozen)

    assert paper.paper_numbers(imagenet(128, True)) == {"val/acc": (72.31, None), "val/acc_top5": (90.64, None)}
    assert paper.paper_numbers(imagenet(None, False)) == {"val/acc": (72.60, None), "val/acc_top5": (90.69, None)}
    assert paper.paper_numbers(imagenet(128, False)) == {}
    assert paper.paper_numbers(imagenet(32, True)) == {}
    assert paper.recipe_differences(imagenet(8, True)) == {}


def test_the_recipe_keys_are_those_of_lc_train_s_configs():
    """Every key of TABLE_1_RECIPE is in the config lc-train records for a Table 1 cell, with the paper's
    value; a run with another optimizer differs in its class and lr, and leaves out what AdamW lacks."""
    cell = [
        "--config",
        str(CONFIGS / "table1" / "base.yaml"),
        "--config",
        str(CONFIGS / "table1" / "cifar10_lc_frozen.yaml"),
    ]
    parser = FitConfigParser()
    recorded = yaml.safe_load(parser.fit_config(cell))
    assert {key: config_value(recorded, key, "missing") for key in paper.TABLE_1_RECIPE} == paper.TABLE_1_RECIPE
    assert paper.recipe_differences(recorded) == {}
    adamw = yaml.safe_load(
        parser.fit_config([*cell, "--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.003"])
    )
    assert paper.recipe_differences(adamw) == {
        "model.optimizer.class_path": ("torch.optim.AdamW", "lc_lightning.optim.PaperSGD"),
        "model.optimizer.init_args.lr": (0.003, 0.01),
    }


def _markdown_table(text: str, title: str) -> list[list[str]]:
    """The header and rows (cells stripped) of the first Markdown table after the line starting with ``title``."""
    lines = text[text.index(title) :].splitlines()
    table = list(itertools.takewhile(lambda line: line.startswith("|"), itertools.dropwhile(
        lambda line: not line.startswith("|"), lines)))  # fmt: skip
    cells = [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in table]
    return [cells[0], *cells[2:]]


@pytest.mark.skipif(not PAPER_MD.is_file(), reason=f"{PAPER_MD} is not here (CI has it)")
def test_paper_numbers_are_those_of_paper_md():
    text = PAPER_MD.read_text()
    header, *rows = _markdown_table(text, "Table 1,")
    table_1 = {}
    for dataset, *cells in rows:
        table_1[dataset] = {}
        for mode, cell in zip(header[1:], cells, strict=True):
            mean, std = cell.split("+-")
            table_1[dataset][mode] = (float(mean), float(std))
    assert paper.TABLE_1 == table_1
    data_class = {dataset: name for name, dataset in paper.TABLE_1_DATASETS.items()}
    for dataset, modes in table_1.items():
        for mode, number in modes.items():
            values = {EXPANSION: None if mode == "baseline" else 128, FREEZE: mode == "LC frozen random"}
            config = cifar10_config(Run("run", values), data=data_class[dataset])
            assert paper.paper_numbers(config) == {"val/acc": number}, (dataset, mode)

    header, *rows = _markdown_table(text, "Table 2,")
    assert header[1:] == ["frozen random", "learnable"]
    table_2 = {}
    for model, *cells in rows:
        expansion = None if model.startswith("baseline") else int(model.removeprefix("LC x"))
        table_2[expansion] = {}
        for frozen, cell in zip([True, False], cells, strict=True):
            table_2[expansion][frozen] = None if cell.startswith("n/a") else tuple(map(float, cell.split("/")))
    assert paper.TABLE_2 == table_2
    for expansion, cells in table_2.items():
        for frozen, number in cells.items():
            config = imagenet_config(expansion, frozen)
            expected = {} if number is None else {"val/acc": (number[0], None), "val/acc_top5": (number[1], None)}
            assert paper.paper_numbers(config) == expected


@pytest.fixture
def figure4(tmp_path):
    """A Figure-4-like sweep of CIFAR-10 ResNet-20-16 runs (expansion 8, 128 x frozen/learnable + the
    baseline, 3 seeds each), with unfinished runs; returns (sweep dir, run dirs, final val/acc by run name)."""
    sweep = Sweep(
        configs=("/nowhere/base.yaml",),
        grids=(
            {EXPANSION: [8, 128], FREEZE: [True, False], SEED: [0, 1, 2]},
            {EXPANSION: [None], FREEZE: [False], SEED: [0, 1, 2]},
        ),
        labels=FIGURE4_LABELS,
    )
    run_dirs = write_sweep(tmp_path / "figure4", sweep)
    accuracies = {}
    for index, name in enumerate(run_dirs):
        accuracies[name] = (500 + 23 * index + (index * index) % 11) / 1024  # exact in float32
    unfinished = {
        "expansion=128,freeze_spatial=false,seed_everything=1": ("failed", "RuntimeError: CUDA out of memory"),
        "expansion=128,freeze_spatial=false,seed_everything=2": ("interrupted", "KeyboardInterrupt: "),
        "expansion=8,freeze_spatial=false,seed_everything=0": ("failed", "ValueError: boom"),
        "expansion=8,freeze_spatial=false,seed_everything=1": ("running", None),
    }
    for name, run_dir in run_dirs.items():
        if name == "expansion=8,freeze_spatial=false,seed_everything=2":
            continue  # missing: never started
        state, error = unfinished.get(name, ("finished", None))
        # unfinished runs log a far-off accuracy: counted, it would move every mean
        accuracy = accuracies[name] if state == "finished" else 0.0
        entropy = 0.75 + accuracies[name] / 4
        values = {"val/acc": accuracy, "val/fgsm_acc": accuracy / 2, "filters/entropy_first": entropy}
        finish(run_dir, values, state, error)
    return tmp_path / "figure4", run_dirs, accuracies


def test_table_groups_runs_by_axes_with_mean_and_sample_std(figure4):
    path, run_dirs, accuracies = figure4
    results = read_results(path)
    assert results.axes == [EXPANSION, FREEZE]
    rows = table_rows(markdown_table(results), "expansion")
    assert [(row["expansion"], row["freeze_spatial"]) for row in rows] == [
        ("8", "LC frozen random"), ("8", "LC learnable"), ("128", "LC frozen random"), ("128", "LC learnable"),
        ("baseline", "LC learnable"),
    ]  # fmt: skip
    assert list(rows[0]) == ["expansion", "freeze_spatial", "runs", "val/acc [%]", "paper [%]", "FGSM acc [%]",
                             "entropy first"]  # fmt: skip

    def accuracy(expansion, frozen, seeds) -> list[float]:
        return [accuracies[f"expansion={expansion},freeze_spatial={frozen},seed_everything={seed}"] for seed in seeds]

    frozen_128 = accuracy(128, "true", [0, 1, 2])
    mean, std = statistics.mean(frozen_128) * 100, statistics.stdev(frozen_128) * 100
    assert rows[2]["val/acc [%]"] == f"{mean:.2f} ± {std:.2f}"
    assert rows[2]["runs"] == "3/3" and rows[2]["paper [%]"] == "92.55 ± 0.28"
    fgsm = [value / 2 for value in frozen_128]
    assert rows[2]["FGSM acc [%]"] == f"{statistics.mean(fgsm) * 100:.2f} ± {statistics.stdev(fgsm) * 100:.2f}"
    entropy = [0.75 + value / 4 for value in frozen_128]
    assert rows[2]["entropy first"] == f"{statistics.mean(entropy):.3f} ± {statistics.stdev(entropy):.3f}"
    # one finished run of three: its value alone, no std
    assert rows[3]["runs"] == "1/3" and rows[3]["paper [%]"] == "91.86 ± 0.34"
    assert rows[3]["val/acc [%]"] == f"{accuracy(128, 'false', [0])[0] * 100:.2f}"
    assert rows[1]["runs"] == "0/3" and rows[1]["val/acc [%]"] == "—" and rows[1]["paper [%]"] == "—"
    assert rows[0]["paper [%]"] == "—"
    baseline = accuracy("null", "false", [0, 1, 2])
    assert rows[4]["val/acc [%]"] == f"{statistics.mean(baseline) * 100:.2f} ± {statistics.stdev(baseline) * 100:.2f}"
    assert rows[4]["paper [%]"] == "92.34 ± 0.24"


def test_table2_sweep_has_top5_beside_the_paper_and_no_epochs_note(tmp_path):
    sweep = Sweep(configs=("/nowhere/base.yaml",), grids=({EXPANSION: [None, 8, 128], FREEZE: [True, False]},),
                  labels=FIGURE4_LABELS)  # fmt: skip
    run_dirs = write_sweep(tmp_path / "table2", sweep, lambda run: imagenet_config(*run.values.values()))
    for index, run_dir in enumerate(run_dirs.values()):
        finish(run_dir, {"val/acc": 0.5 + index / 64, "val/acc_top5": 0.75 + index / 128})
    results = read_results(tmp_path / "table2")
    section = sweep_section(results, [])
    rows = table_rows(section, "expansion")
    assert list(rows[0]) == ["expansion", "freeze_spatial", "runs", "val/acc [%]", "paper [%]", "top-5 [%]",
                             "paper top-5 [%]"]  # fmt: skip
    assert rows[0] == {
        "expansion": "baseline",
        "freeze_spatial": "LC frozen random",
        "runs": "1/1",
        "val/acc [%]": "50.00",
        "paper [%]": "37.85",
        "top-5 [%]": "75.00",
        "paper top-5 [%]": "61.37",
    }
    assert (rows[2]["expansion"], rows[2]["paper [%]"], rows[2]["paper top-5 [%]"]) == ("8", "71.30", "90.03")
    assert (rows[5]["expansion"], rows[5]["freeze_spatial"], rows[5]["paper [%]"]) == ("128", "LC learnable", "—")
    assert rows[5]["paper top-5 [%]"] == "—" and rows[5]["val/acc [%]"] == f"{(0.5 + 5 / 64) * 100:.2f}"
    assert "Note:" not in section and "Runs not finished" not in section
    axes = metric_figure(results, "val/acc_top5", EXPANSION).axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert sorted(legend) == sorted(["LC frozen random", "baseline, LC frozen random",
                                     "paper: baseline, LC frozen random", "paper: LC frozen random", "LC learnable",
                                     "baseline, LC learnable", "paper: baseline, LC learnable",
                                     "paper: LC learnable"])  # fmt: skip
    assert list(axes.get_xticks()) == [8, 128]


def test_report_lists_unfinished_runs_and_notes_the_epochs(figure4, tmp_path, capsys):
    path, run_dirs, accuracies = figure4
    main([str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    report = (tmp_path / "out" / "report.md").read_text()
    assert captured.out == report
    assert (
        "Note: the paper's numbers are for its recipe; these runs differ in trainer.max_epochs: 2 (paper: 75)."
        in report
    )
    listed = {
        "expansion=128,freeze_spatial=false,seed_everything=1": "failed: RuntimeError: CUDA out of memory",
        "expansion=128,freeze_spatial=false,seed_everything=2": "interrupted: KeyboardInterrupt:",
        "expansion=8,freeze_spatial=false,seed_everything=0": "failed: ValueError: boom",
        "expansion=8,freeze_spatial=false,seed_everything=1": "died: its process (which no longer holds it) stopped "
        "without recording why",
        "expansion=8,freeze_spatial=false,seed_everything=2": "missing (never started)",
    }
    for name, state in listed.items():
        assert f"- `{name}`: {state} (`{run_dirs[name]}`)" in report
        assert f"lc-report: figure4/{name}: {state}" in captured.err
    assert report.count("\n- `") == len(listed)
    assert "lc-sweep" in report and "same arguments" in report and "lc-sweep" in captured.err
    assert f"lc-report: wrote {tmp_path / 'out' / 'report.md'}" in captured.err


def test_report_lists_the_evaluations_of_saved_checkpoints(figure4, tmp_path, capsys):
    path, run_dirs, _ = figure4
    run = RunDirectory(run_dirs["expansion=128,freeze_spatial=true,seed_everything=0"])
    checkpoint = run.checkpoint_dir / "last.ckpt"
    for stage, metrics in (("validate", {"val/acc": 0.9125, "val/fgsm_acc": 0.5, "val/loss": 0.3}),
                           ("test", {"test/acc": 0.875})):  # fmt: skip
        evaluation, _ = run.claim_evaluation(stage)
        evaluation.create(f"ckpt_path: {checkpoint}\n")
        evaluation.write_status(RunStatus("finished", metrics=metrics))
    main([str(path), "--out", str(tmp_path / "out")])
    report = (tmp_path / "out" / "report.md").read_text()
    listed = f"- `{run.path.name}/{{}}` (checkpoint `{checkpoint}`): finished; {{}}\n"
    assert listed.format("validate_0", "val/acc 91.25 %; val/fgsm_acc 50.00 %") in report
    assert listed.format("test_0", "test/acc 87.50 %") in report
    capsys.readouterr()


def test_runs_csv_has_every_run_at_full_precision(figure4, tmp_path, capsys):
    path, run_dirs, accuracies = figure4
    main([str(path), "--out", str(tmp_path / "out")])
    with open(tmp_path / "out" / "runs.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert [row["run"] for row in rows] == list(run_dirs)
    assert list(rows[0]) == ["run", "sweep", EXPANSION, FREEZE, SEED, "state", "val/acc", "val/acc_top5",
                             "val/fgsm_acc", "filters/entropy_first", "filters/entropy_last"]  # fmt: skip
    by_name = {row["run"]: row for row in rows}
    finished = by_name["expansion=128,freeze_spatial=true,seed_everything=2"]
    assert finished["sweep"] == str(path) and finished["state"] == "finished"
    assert (finished[EXPANSION], finished[FREEZE], finished[SEED]) == ("128", "true", "2")
    assert float(finished["val/acc"]) == accuracies["expansion=128,freeze_spatial=true,seed_everything=2"]
    assert finished["val/acc_top5"] == "" and finished["filters/entropy_last"] == ""
    entropy = 0.75 + accuracies["expansion=128,freeze_spatial=true,seed_everything=2"] / 4
    assert float(finished["filters/entropy_first"]) == pytest.approx(entropy, rel=1e-7)  # float32, not rounded
    assert len(finished["filters/entropy_first"]) > 8
    assert by_name["expansion=null,freeze_spatial=false,seed_everything=0"][EXPANSION] == "null"
    missing = by_name["expansion=8,freeze_spatial=false,seed_everything=2"]
    assert missing["state"] == "missing" and missing["val/acc"] == ""
    assert by_name["expansion=8,freeze_spatial=false,seed_everything=0"]["state"] == "failed"


def test_plot_draws_series_the_baseline_and_the_paper(figure4):
    path, run_dirs, accuracies = figure4
    results = read_results(path)
    assert plot_axis(results) == EXPANSION
    axes = metric_figure(results, "val/acc", EXPANSION).axes[0]
    legend = [text.get_text() for text in axes.get_legend().get_texts()]
    assert sorted(legend) == sorted(["LC frozen random", "paper: LC frozen random", "LC learnable", "baseline",
                                     "paper: baseline", "paper: LC learnable"])  # fmt: skip
    assert axes.get_xscale() == "log" and list(axes.get_xticks()) == [8, 128]
    assert axes.get_xlabel() == "expansion" and axes.get_ylabel() == "val/acc [%]" and axes.get_title() == "figure4"
    frozen = next(line for line in axes.get_lines() if line.get_label() == "LC frozen random")
    names = [[f"expansion={e},freeze_spatial=true,seed_everything={s}" for s in range(3)] for e in (8, 128)]
    expected = [statistics.mean(accuracies[name] for name in seeds) * 100 for seeds in names]
    assert list(frozen.get_xdata()) == [8, 128] and list(frozen.get_ydata()) == pytest.approx(expected)
    baseline = next(line for line in axes.get_lines() if line.get_label() == "baseline")
    assert baseline.get_linestyle() == "--"
    seeds = [f"expansion=null,freeze_spatial=false,seed_everything={s}" for s in range(3)]
    baseline_mean = statistics.mean(accuracies[name] for name in seeds)
    assert list(baseline.get_ydata()) == pytest.approx([baseline_mean * 100] * 2)
    # learnable: x 128 only (x 8 has no finished run), a single point
    learnable = next(line for line in axes.get_lines() if line.get_label() == "LC learnable")
    assert list(learnable.get_xdata()) == [128]
    paper_bars = [container for container in axes.containers if isinstance(container, ErrorbarContainer)]
    paper_points = {container.get_label(): container.lines[0].get_ydata()[0] for container in paper_bars}
    assert paper_points == {"paper: LC frozen random": 92.55, "paper: LC learnable": 91.86}
    dotted = [line for line in axes.get_lines() if line.get_linestyle() == ":"]
    assert [line.get_ydata()[0] for line in dotted] == [92.34]  # the paper's baseline
    assert len([patch for patch in axes.collections if isinstance(patch, PolyCollection)]) >= 2  # std bands


def test_cli_writes_pngs_and_prefixes_several_sweeps(figure4, tmp_path, capsys):
    path, _, _ = figure4
    other = Sweep(configs=("/nowhere/base.yaml",), grids=({"model.network.init_args.width": [16, 32], SEED: [0, 1]},))
    other_dirs = write_sweep(tmp_path / "widths", other)
    for index, run_dir in enumerate(other_dirs.values()):
        finish(run_dir, {"val/acc": 0.5 + index / 64})
    main([str(path), str(tmp_path / "widths")])
    out = path / "report"
    report = (out / "report.md").read_text()
    assert "## figure4" in report and "## widths" in report
    for name in ["figure4_val_acc.png", "figure4_val_fgsm_acc.png", "figure4_filters_entropy_first.png",
                 "widths_val_acc.png"]:  # fmt: skip
        assert (out / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n"), name
        assert f"]({name})" in report
    assert not (out / "widths_val_fgsm_acc.png").exists()
    widths = table_rows(report, "width")  # width 16: Table 1's baseline; 32: not in the paper
    assert widths[0]["paper [%]"] == "92.34 ± 0.24"
    assert widths[1] == {"width": "32", "runs": "2/2", "val/acc [%]": "53.91 ± 1.10", "paper [%]": "—"}


def test_no_numeric_axis_means_no_plots(tmp_path, capsys):
    sweep = Sweep(configs=("/nowhere/base.yaml",), grids=({FREEZE: [True, False], SEED: [0, 1]},))
    for run_dir in write_sweep(tmp_path / "modes", sweep).values():
        finish(run_dir, {"val/acc": 0.5})
    assert plot_axis(read_results(tmp_path / "modes")) is None
    main([str(tmp_path / "modes")])
    assert "no plots for modes" in capsys.readouterr().err
    assert not list((tmp_path / "modes" / "report").glob("*.png"))


@pytest.mark.parametrize("case", ["not a sweep", "nothing finished"])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    if case == "nothing finished":
        sweep = Sweep(configs=("/nowhere/base.yaml",), grids=({SEED: [0, 1]},))
        run_dirs = write_sweep(tmp_path / "sweep", sweep)
        RunDirectory(run_dirs["seed_everything=0"]).write_status(RunStatus("failed", error="ValueError: boom"))
        expected = "no finished run to report"
    else:
        (tmp_path / "sweep").mkdir()
        expected = "is not a sweep directory"
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "sweep")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("lc-report: error: ") and expected in err and err.count("\n") == 1
    assert not (tmp_path / "sweep" / "report").exists()


def test_lc_report_imports_neither_torch_nor_lightning():
    code = "import sys, lc_lightning.report.cli; print(sorted({'torch', 'lightning'} & set(sys.modules)))"
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert imported.strip() == "[]"  # lc-report starts in a second, not the several of importing torch
