"""lc-sweep driven in this process with its lc-train, sbatch, squeue and srun replaced by scripts that record
the commands they receive, and a tiny run config for its grids."""

import os
import shlex
import sys
from pathlib import Path

import yaml

from lc_lightning.sweep.cli import main as lc_sweep


def tiny_config(tmp_path: Path, data_dir: Path) -> Path:
    """A config of a tiny run for a sweep's runs: ResNet-LC-8-4x2 on 16 images of the tiny CIFAR-10 at
    ``data_dir``, two steps an epoch for two epochs, on the CPU in fp32, logging every step, no analysis."""
    config = {
        "trainer": {"accelerator": "cpu", "precision": "32-true", "max_epochs": 2, "callbacks": None,
                    "enable_progress_bar": False, "enable_model_summary": False, "log_every_n_steps": 1},
        "model": {"network": {"class_path": "lc_lightning.models.CifarResNet",
                              "init_args": {"depth": 8, "width": 4, "expansion": 2}}},
        "data": {"class_path": "lc_lightning.data.CIFAR10DataModule",
                 "init_args": {"data_dir": str(data_dir), "download": False, "num_workers": 0, "batch_size": 8,
                               "train_subset": 16, "val_subset": 8}},
    }  # fmt: skip
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def recording_script(path: Path, calls: Path, first: str = "", then: str = "") -> None:
    """An executable script at ``path`` that runs the shell commands ``first``, writes its arguments, one a line,
    to a new numbered file in ``calls``, then runs the shell commands ``then``."""
    calls.mkdir(exist_ok=True)
    path.parent.mkdir(exist_ok=True)
    folder = shlex.quote(str(calls))
    record = (
        f'call={folder}/$(ls {folder} | wc -l)\nprintf "%s\\n" "$@" > "$call.partial"\nmv "$call.partial" "$call"\n'
    )
    path.write_text(f"#!/bin/sh\n{first}\n{record}{then}\n")
    path.chmod(0o755)


def recorded(calls: Path) -> list[list[str]]:
    """The arguments of every call a recording script received, in the order of the calls."""
    files = sorted(calls.iterdir(), key=lambda path: int(path.name)) if calls.is_dir() else []
    return [path.read_text().splitlines() for path in files]


def record_lc_train_commands(tmp_path: Path, monkeypatch) -> Path:
    """For this test, lc-sweep's lc-train processes (``sys.executable -m lc_lightning.cli ...``) replaced by a
    recording script; the folder of its calls. Any other use of ``sys.executable`` runs this Python."""
    calls = tmp_path / "lc-train-calls"
    interpreter = tmp_path / "fake-python" / "python"
    recording_script(
        interpreter, calls, first=f'[ "$1 $2" = "-m lc_lightning.cli" ] || exec {shlex.quote(sys.executable)} "$@"'
    )
    monkeypatch.setattr(sys, "executable", str(interpreter))
    return calls


def record_slurm_commands(tmp_path: Path, monkeypatch) -> dict[str, Path]:
    """For this test, sbatch, squeue and srun first on PATH, each a recording script: sbatch answers as
    ``sbatch --parsable`` does for job 123, squeue lists no job; the folder of each one's calls, by command."""
    bin_dir = tmp_path / "fake-slurm"
    calls = {command: tmp_path / f"{command}-calls" for command in ("sbatch", "squeue", "srun")}
    recording_script(bin_dir / "sbatch", calls["sbatch"], then="echo 123")
    recording_script(bin_dir / "squeue", calls["squeue"])
    recording_script(bin_dir / "srun", calls["srun"])
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls


def sweep_output(capsys, *args: str) -> str:
    """Run lc-sweep in this process, expecting it to succeed; what it printed on stdout."""
    try:
        lc_sweep(list(args))
    except SystemExit as exit_info:
        assert exit_info.code in (0, None), capsys.readouterr()
    return capsys.readouterr().out


def trained(calls: list[list[str]]) -> list[str]:
    """The run directories of recorded lc-sweep commands (``-m lc_lightning.cli fit --config <run>/config.yaml
    --ckpt_path last``), each checked to be that command."""
    runs = []
    for call in calls:
        assert call[:4] == ["-m", "lc_lightning.cli", "fit", "--config"] and call[5:] == ["--ckpt_path", "last"]
        assert Path(call[4]).name == "config.yaml"
        runs.append(str(Path(call[4]).parent))
    return runs
