"""What a user sees for a mistake: one line naming the option or file and the fix, exit status 2,
no usage dump, no traceback; and a short --help."""

import io
import urllib.error
import urllib.request

import pytest
import torch
from helpers.cli import CONFIGS, printed_config, usage_error

from lc_lightning.cli import build_cli, main
from lc_lightning.data import CIFAR10DataModule, FashionMNISTDataModule, SVHNDataModule
from lc_lightning.errors import DownloadError, InvalidArgumentError
from lc_lightning.optim import PaperSGD
from lc_lightning.sweep.fit_config import FitConfigParser

FASHION_MNIST_CELL = [
    "--config", str(CONFIGS / "table1" / "base.yaml"),
    "--config", str(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
]  # fmt: skip


def error_of(capsys, *args: str) -> str:
    """The one line ``lc-train fit <Table 1's Fashion-MNIST cell> ARGS --print_config`` writes to stderr,
    checked to end the process with status 2 and no usage or traceback."""
    err = usage_error(capsys, "fit", *FASHION_MNIST_CELL, *args, "--print_config")
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--model.expansoin=8"], "lc-train: error: unknown option --model.expansoin; did you mean "
         "--model.network.init_args.expansion? (lc-train fit --help lists the options)"),
        (["--trainer.max_epohcs=3"], "did you mean --trainer.max_epochs?"),
        (["--model.network.init_args.expansoin=8"], "lc-train: error: --model.network.init_args.expansoin: "
         "CifarResNet has no argument 'expansoin'; did you mean --model.network.init_args.expansion? "
         "(its arguments: depth, width, kernel_size, expansion, init, lc_form, normalized_lc_step)"),
        (["--data.batch_sise=8"], "FashionMNISTDataModule has no argument 'batch_sise'; did you mean "
         "--data.init_args.batch_size?"),
        (["--model.network.init_args.init=kaiming"], "lc-train: error: --model.network.init_args.init: 'kaiming' "
         "is not one of kaiming_uniform, kaiming_normal, glorot_uniform, glorot_normal, orthogonal, binary, "
         "ternary; did you mean kaiming_normal?"),
        (["--model.network=CifarResNett"], "lc-train: error: --model.network: no class 'CifarResNett' can be "
         "imported; did you mean lc_lightning.models.CifarResNet?"),
        (["--data=CIFAR11DataModule"], "did you mean lc_lightning.data.CIFAR10DataModule?"),
        (["--trainer.precision=bf17"], "--trainer.precision: 'bf17' is not one of 64, 32, 16, transformer-engine"),
        (["--model.optimizer.lr=abc"], "lc-train: error: --model.optimizer.init_args.lr: expected a float, got 'abc'"),
        (["--model.optimizer=torch.optim.Adamw"], "lc-train: error: --model.optimizer: no class 'torch.optim.Adamw' "
         "can be imported; did you mean torch.optim.AdamW?"),
        (["--model.optimizer=lc_lightning.optim.PaperSDG"], "did you mean lc_lightning.optim.PaperSGD?"),
        (["--model.optimizer=torch.optim.AdamW", "--model.optimizer.momentum=0.9"], "lc-train: error: "
         "--model.optimizer.init_args.momentum: AdamW has no argument 'momentum' (its arguments: lr, betas, eps, "
         "weight_decay, amsgrad, maximize, foreach, capturable, differentiable, fused)"),
        (["--model.lr_scheduler=torch.optim.AdamW"], "lc-train: error: --model.lr_scheduler: torch.optim.AdamW is "
         "not a subclass of LRScheduler (for example torch.optim.lr_scheduler.CosineAnnealingLR, "
         "torch.optim.lr_scheduler.PolynomialLR)"),
        (["--model.lr_scheduler.T_max=5"], "lc-train: error: --model.lr_scheduler.init_args.T_max: set by lc-train, "
         "which gives CosineAnnealingLR the optimizer and the run's length in optimizer steps (its arguments: "
         "eta_min, last_epoch)"),
    ],
)  # fmt: skip
def test_an_unknown_option_class_or_choice_gets_one_line_with_the_closest_match(capsys, args, expected):
    assert expected in error_of(capsys, *args)


OPTIMIZER_LR = "--model.optimizer.init_args.lr"


@pytest.mark.parametrize(
    "given, named, bounds",
    [
        ("--model.optimizer.lr=-0.1", f"{OPTIMIZER_LR}=-0.1", "> 0"),
        (f"{OPTIMIZER_LR}=0", f"{OPTIMIZER_LR}=0", "> 0"),
        ("--model.optimizer.weight_decay=-1", "--model.optimizer.init_args.weight_decay=-1", ">= 0"),
        ("--model.optimizer.momentum=1", "--model.optimizer.init_args.momentum=1", ">= 0 and < 1"),
        ("--model.optimizer.momentum=-0.5", "--model.optimizer.init_args.momentum=-0.5", ">= 0 and < 1"),
        ("--model.label_smoothing=1.5", "--model.label_smoothing=1.5", ">= 0 and < 1"),
    ],
)
def test_a_recipe_number_out_of_range_is_refused_while_parsing(capsys, given, named, bounds):
    assert error_of(capsys, given) == f"lc-train: error: {named} is out of range: it must be {bounds}"


@pytest.mark.parametrize("old", ["lr", "momentum", "nesterov", "weight_decay"])
def test_the_optimizer_options_of_old_point_to_the_optimizers_arguments(capsys, old):
    assert error_of(capsys, f"--model.{old}=0.1") == (
        f"lc-train: error: unknown option --model.{old}; did you mean --model.optimizer.init_args.{old}? "
        "(lc-train fit --help lists the options)"
    )


@pytest.mark.parametrize(
    "args, optimizer_class, expected",
    [
        (["--model.optimizer.lr=0.2", "--model.optimizer.momentum=0.5", "--model.optimizer.weight_decay=0"],
         PaperSGD, {"lr": 0.2, "momentum": 0.5, "weight_decay": 0.0}),
        # jsonargparse carries lr and weight_decay over from PaperSGD to the class named after it
        (["--model.optimizer.weight_decay=0.5", "--model.optimizer=torch.optim.AdamW"],
         torch.optim.AdamW, {"lr": 0.01, "weight_decay": 0.5}),
    ],
)  # fmt: skip
def test_in_range_recipe_numbers_reach_the_optimizer_as_plain_floats(
    tmp_path, monkeypatch, capsys, args, optimizer_class, expected
):
    """The parser checks the ranges, but what it passes on holds plain numbers: a float subclass would not
    load from a checkpoint with weights_only=True, nor be written to the run's config.yaml."""
    monkeypatch.chdir(tmp_path)
    cli = build_cli(
        [*FASHION_MNIST_CELL, *args, "--model.label_smoothing=0.5", "--model.lr_reference_batch=64"], run=False
    )
    optimizer = cli.model.optimizer([torch.nn.Parameter(torch.ones(2))])
    assert type(optimizer) is optimizer_class
    (group,) = optimizer.param_groups
    assert {name: group[name] for name in expected} == expected
    assert {type(group[name]) for name in expected} == {float}
    saved = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "hyper_parameters": dict(cli.model.hparams)}, saved)
    saved.seek(0)
    loaded = torch.load(saved, weights_only=True)
    assert loaded["optimizer"]["param_groups"][0]["lr"] == expected["lr"]
    hparams = cli.model.hparams
    assert type(hparams.label_smoothing) is float and type(hparams.lr_reference_batch) is int
    printed = printed_config(capsys, *FASHION_MNIST_CELL, *args)
    assert printed["model"]["optimizer"]["init_args"]["lr"] == expected["lr"]


def test_a_missing_config_file_is_named(capsys, tmp_path):
    message = error_of(capsys, "--config", str(tmp_path / "nope.yaml"))
    assert message == f"lc-train: error: --config: no such file {tmp_path / 'nope.yaml'}"


def test_a_yaml_syntax_error_names_the_file_and_line(capsys, tmp_path):
    config = tmp_path / "typo.yaml"
    config.write_text("model:\n  optimizer: {init_args: {lr: 0.1}}\n  label_smoothing: [0.1\ntrainer: {}\n")
    message = error_of(capsys, "--config", str(config))
    assert message.startswith(f"lc-train: error: {config}:4:")
    assert "invalid YAML" in message


def test_a_yaml_syntax_error_in_a_config_that_a_config_names_is_found_too(capsys, tmp_path):
    (tmp_path / "data.yaml").write_text("class_path: lc_lightning.data.FashionMNISTDataModule\ninit_args: {a: 1\n")
    outer = tmp_path / "outer.yaml"
    outer.write_text("data: data.yaml\n")
    message = error_of(capsys, "--config", str(outer))
    assert message.startswith(f"lc-train: error: {tmp_path / 'data.yaml'}:3:")


def test_an_unknown_subcommand_suggests_the_closest(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fitt"])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (
        "lc-train: error: unknown subcommand 'fitt'; did you mean fit? (choose from fit, validate, test)\n"
    )


def test_lc_sweep_checks_grid_runs_with_the_same_messages():
    message = r"^--model.optimizer.init_args.lr=-1 is out of range: it must be > 0$"
    with pytest.raises(InvalidArgumentError, match=message):
        FitConfigParser().fit_config([*FASHION_MNIST_CELL, "--model.optimizer.lr=-1"])


@pytest.fixture
def offline(monkeypatch):
    """Every URL fails to resolve, as on a cluster node without internet."""

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)


@pytest.mark.parametrize(
    "datamodule, urls",
    [
        (CIFAR10DataModule, ["https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"]),
        (SVHNDataModule, ["http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
                          "http://ufldl.stanford.edu/housenumbers/test_32x32.mat"]),
    ],
)  # fmt: skip
def test_a_failed_download_names_the_urls_the_files_and_the_directory(offline, tmp_path, datamodule, urls):
    with pytest.raises(DownloadError) as error:
        datamodule(data_dir=str(tmp_path), download=True).prepare_data()
    names = ", ".join(url.rpartition("/")[2] for url in urls)
    assert str(error.value).splitlines() == [
        f"{datamodule.__name__}: the download failed ([Errno -3] Temporary failure in name resolution). "
        f"Put {names} into {tmp_path} and pass --data.download=false",
        "  download: " + " ".join(urls),
    ]


def test_fashion_mnist_download_names_its_raw_folder(offline, tmp_path, monkeypatch):
    monkeypatch.setattr("lc_lightning.data.fashion_mnist.DEBIAN_DIR", tmp_path / "no-debian-package")
    with pytest.raises(DownloadError) as error:
        FashionMNISTDataModule(data_dir=str(tmp_path), download=True).prepare_data()
    message = str(error.value)
    assert f"into {tmp_path / 'FashionMNIST' / 'raw'} and pass --data.download=false" in message
    assert "train-images-idx3-ubyte.gz" in message and "t10k-labels-idx1-ubyte.gz" in message


def test_offline_fit_with_download_ends_with_the_download_message_and_exit_2(offline, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / "cifar10_e32.yaml"), "--trainer.accelerator=cpu"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "lc-train: error: CIFAR10DataModule: the download failed" in err
    assert err.rstrip().endswith("download: https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz")


def test_fit_help_is_short_and_lists_what_users_set(capsys):
    main(["fit", "--help"])
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 250
    for option in ("--model.network.init_args.expansion=null", "--data.train_subset=null",
                   "--trainer.max_epochs=75", "--model.freeze_spatial=false", "--data.batch_size=256",
                   "--model.optimizer=lc_lightning.optim.PaperSGD", "--model.optimizer.lr=0.01",
                   "--model.optimizer.momentum=0.9", "--model.optimizer.nesterov=true",
                   "--model.optimizer.weight_decay=0.01",
                   "--model.lr_scheduler=torch.optim.lr_scheduler.CosineAnnealingLR"):  # fmt: skip
        assert option in out
    # descriptions come from the docstrings
    assert "turns every spatial conv, the stem included, into an LC-Block" in out
    assert "train on a fixed random subset of this many images" in out
    assert "the momentum factor, in [0, 1)" in out
    assert "--help-all" in out


def test_help_all_is_lightning_cli_s_complete_reference(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--help-all"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "--trainer.gradient_clip_val" in out and "--lr_monitor.logging_interval" in out


def test_the_help_of_one_network_takes_its_short_name_and_shows_its_docstring(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--model.network.help=CifarResNet"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "--model.network.expansion EXPANSION E >= 1 turns every spatial conv" in out
