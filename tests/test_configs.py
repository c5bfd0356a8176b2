"""The configs of configs/: each accepted, each reproducing what README.md says it does."""

import pytest
import yaml
from helpers.cli import CONFIGS, config_args, printed_config

from lc_lightning.cli import build_cli
from lc_lightning.nn import lc_blocks, lc_form, spatial_convs, spatial_weights

GRIDS = CONFIGS / "grids"  # lc-sweep's grid files (tests/test_sweep.py), not lc-train configs
EXPERIMENTS = sorted(p for p in CONFIGS.rglob("*.yaml") if p.name != "base.yaml" and GRIDS not in p.parents)
PIECES = ("trainer", "data", "callbacks", "optimizers")
PAPER_SGD = {"lr": 0.01, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}
RECIPE = {
    "optimizer": {"class_path": "lc_lightning.optim.PaperSGD", "init_args": PAPER_SGD},
    "lr_scheduler": {
        "class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
        "init_args": {"eta_min": 0.0, "last_epoch": -1},
    },
    "label_smoothing": 0.1,
}


def name_of(path) -> str:
    return str(path.relative_to(CONFIGS).with_suffix(""))


def recipe_of(printed: dict) -> dict:
    return {key: printed["model"][key] for key in RECIPE}


@pytest.mark.parametrize("config", EXPERIMENTS, ids=name_of)
def test_every_config_is_accepted(config, capsys):
    printed = printed_config(capsys, *config_args(config))
    assert printed["model"]["network"]["class_path"].startswith("lc_lightning.models.")
    assert printed["data"]["class_path"].startswith("lc_lightning.data.")
    if config.relative_to(CONFIGS).parts[0] == "optimizers":
        piece, optimizer = yaml.safe_load(config.read_text()), printed["model"]["optimizer"]
        assert optimizer["class_path"] == piece["class_path"]
        assert piece["init_args"].items() <= optimizer["init_args"].items()
    if config.relative_to(CONFIGS).parts[0] not in PIECES:
        # Runs are logged under logs/<the config's path>, so no two experiments share a directory.
        assert printed["trainer"]["logger"]["init_args"]["name"] == name_of(config)


def test_every_base_has_experiments_or_grids():
    grid_configs = {
        (GRIDS / c).resolve() for g in GRIDS.glob("*.yaml") for c in yaml.safe_load(g.read_text())["configs"]
    }
    for base in CONFIGS.rglob("base.yaml"):
        assert any(p.parent == base.parent for p in EXPERIMENTS) or base in grid_configs, base


def test_cifar10_e32_prints_the_complete_paper_recipe(capsys):
    printed = printed_config(capsys, "--config", str(CONFIGS / "cifar10_e32.yaml"))
    assert printed["seed_everything"] == 0
    assert printed["model"]["network"]["init_args"] == {
        "depth": 20, "width": 16, "kernel_size": 3, "expansion": 32, "init": "kaiming_uniform", "lc_form": "folded",
        "normalized_lc_step": False,
    }  # fmt: skip
    assert recipe_of(printed) == RECIPE and printed["model"]["freeze_spatial"] is True
    assert printed["trainer"]["max_epochs"] == 75 and printed["trainer"]["precision"] == "bf16-mixed"
    assert printed["data"]["init_args"]["batch_size"] == 256
    assert printed["checkpoint"]["save_last"] is True
    assert printed["lr_monitor"]["logging_interval"] == "step"
    assert_paper_measurements(printed)


def assert_paper_measurements(printed: dict) -> None:
    """FGSM at the paper's epsilon 1/255, first/last-layer entropy and the filter images are logged."""
    callbacks = {c["class_path"].rpartition(".")[2]: c["init_args"] for c in printed["trainer"]["callbacks"]}
    assert set(callbacks) == {"FGSMAccuracy", "FilterDiversity", "FilterImages"}
    assert callbacks["FGSMAccuracy"]["epsilon"] == pytest.approx(1 / 255)


TABLE1_DATA = {
    "cifar10": "CIFAR10DataModule",
    "cifar100": "CIFAR100DataModule",
    "fashion_mnist": "FashionMNISTDataModule",
    "svhn": "SVHNDataModule",
}


@pytest.mark.parametrize("dataset", TABLE1_DATA)
def test_table1_is_resnet20_16_baseline_and_lc_x128_learnable_and_frozen(dataset, capsys):
    for mode in ("baseline", "lc_learnable", "lc_frozen"):
        printed = printed_config(capsys, *config_args(CONFIGS / "table1" / f"{dataset}_{mode}.yaml"))
        assert printed["model"]["network"] == {
            "class_path": "lc_lightning.models.CifarResNet",
            "init_args": {
                "depth": 20, "width": 16, "kernel_size": 3, "init": "kaiming_uniform",
                "expansion": None if mode == "baseline" else 128, "normalized_lc_step": False,
                # the folded form's trajectory at the baseline's cost: preconditioned (frozen), gram (learned)
                "lc_form": {"baseline": "folded", "lc_learnable": "gram", "lc_frozen": "preconditioned"}[mode],
            },
        }  # fmt: skip
        assert printed["model"]["freeze_spatial"] is (mode == "lc_frozen")
        assert printed["data"]["class_path"] == f"lc_lightning.data.{TABLE1_DATA[dataset]}"
        assert printed["data"]["init_args"]["batch_size"] == 256
        assert printed["model"]["lr_reference_batch"] is None and recipe_of(printed) == RECIPE
        assert printed["trainer"]["max_epochs"] == 75 and printed["seed_everything"] == 0
        assert printed["trainer"]["precision"] is None  # fp32, as in the paper


@pytest.mark.parametrize("expansion", [None, 1, 8, 64, 128])
def test_table2_is_resnet18d_on_imagenet_ready_for_ddp_and_bf16(expansion, capsys):
    stem = "baseline" if expansion is None else f"lc_x{expansion}"
    # each cell in the cheapest form on the folded trajectory (docs/speed.md)
    forms = {"frozen": "preconditioned", "learnable": "gram" if expansion in (64, 128) else "folded"}
    for mode in ("frozen", "learnable"):
        config = CONFIGS / "table2" / f"{stem}_{mode}.yaml"
        printed = printed_config(capsys, *config_args(config), "--config", str(CONFIGS / "trainer" / "ddp.yaml"))
        assert printed["model"]["network"] == {
            "class_path": "lc_lightning.models.TimmNet",
            "init_args": {
                "name": "resnet18d",
                "expansion": expansion,
                "init": "kaiming_uniform",
                "lc_form": "folded" if expansion is None else forms[mode],
                "normalized_lc_step": False,
            },
        }
        assert printed["model"]["freeze_spatial"] is (mode == "frozen")
        model = printed["model"]
        sgd = {**PAPER_SGD, "lr": 0.1, "weight_decay": 1e-4}
        assert recipe_of(printed) == {**RECIPE, "optimizer": {**RECIPE["optimizer"], "init_args": sgd}}
        assert model["lr_reference_batch"] == 256
        assert printed["trainer"]["max_epochs"] == 100
        assert printed["data"]["class_path"] == "lc_lightning.data.ImageNetDataModule"
        trainer = printed["trainer"]
        assert (trainer["strategy"], trainer["precision"], trainer["devices"]) == ("ddp", "bf16-mixed", -1)


FIGURE1_MODELS = [
    "resnet18", "resnet34", "resnet50", "resnet101", "resnet50d", "wide_resnet50_2", "resnext50_32x4d",
    "mobilenetv2_100", "mobilenetv3_large_100",
]  # fmt: skip


def test_figure1_trains_each_off_the_shelf_model_frozen_and_learned_on_cifar10(capsys):
    configs = sorted(p.name for p in (CONFIGS / "figure1").glob("*.yaml") if p.name != "base.yaml")
    assert configs == sorted(f"{name}_{mode}.yaml" for name in FIGURE1_MODELS for mode in ("frozen", "learned"))
    for name in FIGURE1_MODELS:
        for mode in ("frozen", "learned"):
            printed = printed_config(capsys, *config_args(CONFIGS / "figure1" / f"{name}_{mode}.yaml"))
            assert printed["model"]["network"]["class_path"] == "lc_lightning.models.TimmNet"
            assert printed["model"]["network"]["init_args"]["name"] == name
            assert printed["model"]["network"]["init_args"]["expansion"] is None
            assert printed["model"]["freeze_spatial"] is (mode == "frozen")
            assert printed["data"]["class_path"] == "lc_lightning.data.CIFAR10DataModule"
            assert recipe_of(printed) == RECIPE


def test_the_base_of_the_figure_grids_is_resnet_lc_20_16x1_frozen_logging_the_measurements(capsys):
    base = printed_config(capsys, "--config", str(CONFIGS / "sweeps" / "base.yaml"))
    assert base["model"]["network"]["init_args"] == {
        "depth": 20, "width": 16, "kernel_size": 3, "expansion": 1, "init": "kaiming_uniform",
        "lc_form": "preconditioned", "normalized_lc_step": False,
    }  # fmt: skip
    assert base["model"]["freeze_spatial"] is True and recipe_of(base) == RECIPE
    assert base["data"]["class_path"] == "lc_lightning.data.CIFAR10DataModule"
    assert_paper_measurements(base)


def fast_dev_run(config_name: str, data_dir, *overrides: str):
    """``lc-train fit`` of a config for one training and one validation batch on CPU."""
    args = [
        "fit", *config_args(CONFIGS / config_name), "--trainer.accelerator=cpu", "--trainer.fast_dev_run=true",
        "--trainer.enable_progress_bar=false", f"--data.data_dir={data_dir}", "--data.download=false",
        "--data.num_workers=0", "--data.batch_size=4", *overrides,
    ]  # fmt: skip
    cli = build_cli(args)
    assert cli.trainer.global_step == 1 and "val/acc" in cli.trainer.callback_metrics
    return cli


def expansions(model) -> set[int]:
    """The expansions of the model's LC-Blocks."""
    return {conv.parametrizations.weight[0].expansion for _, conv in lc_blocks(model)}


def frozen_and_trainable(model) -> tuple[bool, bool]:
    """Whether every spatial weight is frozen, and whether every other parameter is trainable."""
    spatial = {id(weight) for weight in spatial_weights(model).values()}
    others = [p for p in model.parameters() if id(p) not in spatial]
    return all(not weight.requires_grad for weight in spatial_weights(model).values()), all(
        p.requires_grad for p in others
    )


def test_table1_cifar100_trains_on_the_tiny_pickles(tiny_cifar100, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = fast_dev_run("table1/cifar100_lc_frozen.yaml", tiny_cifar100[0])
    assert cli.model.hparams.num_classes == 100 and cli.model.network.fc.out_features == 100
    metrics = cli.trainer.callback_metrics
    assert 0 <= metrics["val/acc"] <= metrics["val/acc_top5"] <= 1
    assert expansions(cli.model) == {128}
    assert frozen_and_trainable(cli.model) == (True, True)


def test_table1_svhn_trains_on_the_tiny_mat_files(tiny_svhn, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = fast_dev_run("table1/svhn_baseline.yaml", tiny_svhn[0])
    assert expansions(cli.model) == set()
    assert all(p.requires_grad for p in cli.model.parameters())


def test_table2_trains_on_the_tiny_imagenet_tree_with_lr_scaled_to_the_batch(tiny_imagenet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = fast_dev_run("table2/lc_x8_frozen.yaml", tiny_imagenet[0], "--data.num_classes=3", "--data.batch_size=2")
    assert cli.model.hparams.num_classes == 3
    assert expansions(cli.model) == {8}
    assert frozen_and_trainable(cli.model) == (True, True)
    assert cli.trainer.optimizers[0].param_groups[0]["initial_lr"] == pytest.approx(0.1 * 2 / 256)


def test_figure1_trains_a_timm_model_on_tiny_cifar10(tiny_cifar10, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = fast_dev_run("figure1/mobilenetv3_large_100_frozen.yaml", tiny_cifar10[0])
    depthwise = [conv for _, conv in spatial_convs(cli.model) if conv.groups > 1]
    assert depthwise and frozen_and_trainable(cli.model) == (True, True)


def test_the_figure_base_trains_preconditioned_with_every_measurement_on_tiny_cifar10(
    tiny_cifar10, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    cli = fast_dev_run("sweeps/base.yaml", tiny_cifar10[0], "--model.network.init_args.expansion=8")
    assert expansions(cli.model) == {8} and {lc_form(conv) for _, conv in lc_blocks(cli.model)} == {"preconditioned"}
    assert spatial_weights(cli.model) == {} and all(p.requires_grad for p in cli.model.parameters())
    metrics = cli.trainer.callback_metrics
    for key in ("val/fgsm_acc", "filters/entropy_first", "filters/entropy_last"):
        assert key in metrics, key
    assert 0.5 < metrics["filters/entropy_first"] < 1.5  # random-looking combined filters after one step
