"""The paper's numbers (PAPER.md, Tables 1 and 2) and which of them a run's config reproduces."""

from lc_lightning.report.config import config_value

TABLE_1: dict[str, dict[str, tuple[float, float]]] = {
    "CIFAR-10": {"baseline": (92.34, 0.24), "LC learnable": (91.86, 0.34), "LC frozen random": (92.55, 0.28)},
    "CIFAR-100": {"baseline": (63.91, 0.37), "LC learnable": (62.51, 0.45), "LC frozen random": (64.72, 0.47)},
    "Fashion-MNIST": {"baseline": (93.50, 0.15), "LC learnable": (93.25, 0.14), "LC frozen random": (93.65, 0.11)},
    "SVHN": {"baseline": (96.38, 0.12), "LC learnable": (96.16, 0.04), "LC frozen random": (96.27, 0.14)},
}
"""Table 1, ResNet-20-16, expansion 128 for the LC columns: dataset -> mode -> validation accuracy
[%] as (mean, std) over 4 runs."""

TABLE_1_RECIPE = {
    "trainer.max_epochs": 75,
    "model.optimizer.class_path": "lc_lightning.optim.PaperSGD",
    "model.optimizer.init_args.lr": 0.01,
    "model.optimizer.init_args.momentum": 0.9,
    "model.optimizer.init_args.nesterov": True,
    "model.optimizer.init_args.weight_decay": 0.01,
    "model.lr_scheduler.class_path": "torch.optim.lr_scheduler.CosineAnnealingLR",
    "model.lr_scheduler.init_args.eta_min": 0.0,
    "model.label_smoothing": 0.1,
    "data.init_args.batch_size": 256,
    "data.init_args.train_subset": None,
    "data.init_args.val_subset": None,
}
"""The config values of the recipe behind Table 1 (PAPER.md, Training recipe; subsets None: every image)."""

TABLE_2: dict[int | None, dict[bool, tuple[float, float] | None]] = {
    None: {True: (37.85, 61.37), False: (72.60, 90.69)},
    1: {True: (61.28, 83.11), False: (71.82, 90.44)},
    8: {True: (71.30, 90.03), False: (71.88, 90.40)},
    64: {True: (72.46, 90.57), False: (71.94, 90.41)},
    128: {True: (72.31, 90.64), False: None},  # learnable x128 exceeded the paper's 4x A100 memory
}
"""Table 2, timm ResNet-18d on ImageNet, 1 run: expansion (None: baseline, no LC-Blocks) ->
frozen random spatial filters? -> (top-1, top-5) validation accuracy [%], None where not reported."""

TABLE_1_DATASETS = {
    "CIFAR10DataModule": "CIFAR-10",
    "CIFAR100DataModule": "CIFAR-100",
    "FashionMNISTDataModule": "Fashion-MNIST",
    "SVHNDataModule": "SVHN",
}
TABLE_1_EXPANSION = 128


def paper_numbers(config: dict) -> dict[str, tuple[float, float | None]]:
    """The paper's numbers for a run with the lc-train ``config`` (nested dict, as in config.yaml):
    metric tag -> (mean [%], std [%] or None where the paper gives none), e.g.
    ``{"val/acc": (92.55, 0.28)}`` for Table 1's CIFAR-10 LC frozen random cell, ``{"val/acc": (72.31,
    None), "val/acc_top5": (90.64, None)}`` for Table 2's LC x128 frozen random; {} where the paper
    has no such cell (another network, dataset, init, expansion...)."""
    table_1 = _table_1_cell(config)
    if table_1 is not None:
        return {"val/acc": table_1}
    table_2 = _table_2_cell(config)
    if table_2 is not None:
        return {"val/acc": (table_2[0], None), "val/acc_top5": (table_2[1], None)}
    return {}


def recipe_differences(config: dict) -> dict[str, tuple]:
    """Where a run with the lc-train ``config`` that has Table 1 numbers (paper_numbers) left the
    paper's recipe: dotted key -> (ours, the paper's), for the keys of TABLE_1_RECIPE the config
    holds; {} for a run on the recipe, or one the paper gives no recipe for (Table 2, other runs)."""
    if _table_1_cell(config) is None:
        return {}
    missing = object()
    ours = {key: config_value(config, key, missing) for key in TABLE_1_RECIPE}
    return {
        key: (value, TABLE_1_RECIPE[key]) for key, value in ours.items() if value not in (missing, TABLE_1_RECIPE[key])
    }


def _table_1_cell(config: dict) -> tuple[float, float] | None:
    network = config_value(config, "model.network.init_args") or {}
    if (
        _class_name(config, "model.network.class_path") != "CifarResNet"
        or (network.get("depth", 20), network.get("width", 16), network.get("kernel_size", 3)) != (20, 16, 3)
        or network.get("init", "kaiming_uniform") != "kaiming_uniform"
        or network.get("normalized_lc_step", False)
    ):
        return None
    dataset = TABLE_1_DATASETS.get(_class_name(config, "data.class_path"))
    expansion, frozen = network.get("expansion"), config_value(config, "model.freeze_spatial", False)
    if expansion is None:
        mode = None if frozen else "baseline"
    else:
        mode = ("LC frozen random" if frozen else "LC learnable") if expansion == TABLE_1_EXPANSION else None
    return TABLE_1[dataset][mode] if dataset is not None and mode is not None else None


def _table_2_cell(config: dict) -> tuple[float, float] | None:
    network = config_value(config, "model.network.init_args") or {}
    if (
        _class_name(config, "model.network.class_path") != "TimmNet"
        or network.get("name", "resnet18d") != "resnet18d"
        or network.get("init", "kaiming_uniform") != "kaiming_uniform"
        or network.get("normalized_lc_step", False)
        or _class_name(config, "data.class_path") != "ImageNetDataModule"
    ):
        return None
    frozen = bool(config_value(config, "model.freeze_spatial", False))
    return TABLE_2.get(network.get("expansion"), {}).get(frozen)


def _class_name(config: dict, key: str) -> str:
    """The class name of a ``class_path`` (``lc_lightning.models.CifarResNet`` -> ``CifarResNet``)."""
    return str(config_value(config, key, "")).rpartition(".")[2]
