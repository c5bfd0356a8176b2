"""Running lc-train for the tests: the arguments of the configs and of tiny runs, the installed script in a
subprocess, and lc-train in this process with its exit status and what it wrote."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lc_lightning.cli import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
RUN = Path("logs", "cifar10_e32", "version_0")
"""Where the first run of ``tiny_cifar_args`` lives, under the working directory."""
SMALL = ["--model.network.init_args.expansion=2", "--trainer.callbacks=null", "--trainer.enable_model_summary=false",
         "--data.train_subset=16", "--data.val_subset=8"]  # fmt: skip
"""With ``tiny_cifar_args``: a run of two steps an epoch that logs no analysis."""
GRAM = ["--model.network.init_args.lc_form=gram", "--model.freeze_spatial=false", "--model.network.init_args.width=4"]
"""Learned spatial filters in the gram form, in a narrow network."""


def config_args(path: Path) -> list[str]:
    """The ``--config``/``--data`` arguments that use the config file at ``path`` as README.md says.

    An experiment in a folder with a ``base.yaml`` comes after that base; a trainer preset
    after ``cifar10_e32.yaml``; a data piece (the value of ``data``) is given to ``--data``
    and a callbacks piece to ``--trainer.callbacks``, an optimizer piece to ``--model.optimizer``
    (with folded LC-Blocks), all for Table 1's CIFAR-10 LC frozen.
    """
    relative = path.relative_to(CONFIGS)
    table1_cell = ["--config", str(CONFIGS / "table1" / "base.yaml")]
    table1_cell += ["--config", str(CONFIGS / "table1" / "cifar10_lc_frozen.yaml")]
    if relative.parts[0] == "trainer":
        return ["--config", str(CONFIGS / "cifar10_e32.yaml"), "--config", str(path)]
    if relative.parts[0] == "data":
        return [*table1_cell, "--data", str(path)]
    if relative.parts[0] == "callbacks":
        return [*table1_cell, "--trainer.callbacks", str(path)]
    if relative.parts[0] == "optimizers":
        return [*table1_cell, "--model.network.init_args.lc_form=folded", "--model.optimizer", str(path)]
    base = path.parent / "base.yaml"
    if base.is_file() and path != base:
        return ["--config", str(base), "--config", str(path)]
    return ["--config", str(path)]


def _cifar10_e32_on_cpu(root) -> list[str]:
    return [
        "--config", str(CONFIGS / "cifar10_e32.yaml"), "--trainer.accelerator=cpu", f"--data.data_dir={root}",
        "--data.download=false", "--data.num_workers=0", "--data.batch_size=8", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def cifar10_e32_args(root, *extra: str) -> list[str]:
    """lc-train's arguments for configs/cifar10_e32.yaml, its network and precision as they are, on the tiny
    CIFAR-10 at ``root`` (batches of 8) on the CPU, logging every step; then ``extra``."""
    return [*_cifar10_e32_on_cpu(root), "--trainer.log_every_n_steps=1", *extra]


def tiny_cifar_args(root, *extra: str) -> list[str]:
    """lc-train's arguments for configs/cifar10_e32.yaml as ResNet-LC-8-16x32 in fp32 on the tiny CIFAR-10 at
    ``root`` (batches of 8) on the CPU; then ``extra``."""
    return [*_cifar10_e32_on_cpu(root), "--trainer.precision=32-true", "--model.network.init_args.depth=8", *extra]


def run_lc_train(*args: str) -> subprocess.CompletedProcess:
    """Run the installed ``lc-train`` console script with ``args``; its output is captured."""
    command = [str(Path(sys.executable).parent / "lc-train"), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def printed_config(capsys, *args: str) -> dict:
    """The configuration ``lc-train fit ARGS --print_config`` prints, as a dict."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code == 0, capsys.readouterr().err
    return yaml.safe_load(capsys.readouterr().out)


def usage_error(capsys, *args: str, command=main) -> str:
    """Run ``command(ARGS)`` (lc-train by default) in this process, expecting it to exit with status 2 (a usage
    error) with no usage dump and no traceback; its stderr."""
    with pytest.raises(SystemExit) as exit_info:
        command(list(args))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" not in err and "Traceback" not in err, err
    return err


def lc_train_output(capsys, *args: str) -> tuple[int, str, str]:
    """Run lc-train in this process; its exit status, stdout and stderr (which holds no traceback)."""
    try:
        main(list(args))
        status = 0
    except SystemExit as exit_info:
        status = exit_info.code
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return status, out, err


def lc_train(capsys, *args: str) -> tuple[int, str]:
    """Run lc-train in this process; its exit status and the last line it wrote to stderr."""
    status, _, err = lc_train_output(capsys, *args)
    return status, (err.strip().splitlines() or [""])[-1]


def added_callback(class_path: str, **init_args) -> str:
    """The lc-train option that adds the callback ``class_path`` with ``init_args`` to the trainer's."""
    return f"--trainer.callbacks+={json.dumps({'class_path': class_path, 'init_args': init_args})}"
