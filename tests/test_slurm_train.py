"""lc-train on SLURM: the task layout sets the trainer's, scripts/slurm/train.sbatch trains across nodes."""

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import CONFIGS, FASHION_MNIST_DEBIAN, config_args, needs_fashion_mnist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.cli import build_cli, take_layout_from_slurm
from lc_lightning.errors import InvalidArgumentError

pytest_plugins = ["slurm_cluster"]
REPO = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
LC_TRAIN = str(Path(sys.executable).parent / "lc-train")


def as_srun_task(monkeypatch, tasks_per_node: int, nodes: int) -> None:
    """The environment srun gives a task of a job with this layout."""
    for name, value in {
        "SLURM_NTASKS": tasks_per_node * nodes, "SLURM_NTASKS_PER_NODE": tasks_per_node,
        "SLURM_NNODES": nodes, "SLURM_JOB_NAME": "lc-train", "SLURM_PROCID": 0, "SLURM_LOCALID": 0,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, str(value))


def test_devices_and_nodes_come_from_the_slurm_layout(monkeypatch):
    monkeypatch.delenv("SLURM_NTASKS", raising=False)
    unchanged = SimpleNamespace(devices="auto", num_nodes=1)
    take_layout_from_slurm(unchanged)
    assert (unchanged.devices, unchanged.num_nodes) == ("auto", 1)  # not under srun
    as_srun_task(monkeypatch, tasks_per_node=4, nodes=2)
    for devices in ("auto", -1, 4):
        trainer = SimpleNamespace(devices=devices, num_nodes=1)
        take_layout_from_slurm(trainer)
        assert (trainer.devices, trainer.num_nodes) == (4, 2)
    with pytest.raises(
        InvalidArgumentError, match=r"4 task\(s\) per node .* --trainer.devices=1; .* --trainer.devices=4"
    ):
        take_layout_from_slurm(SimpleNamespace(devices=1, num_nodes=2))
    with pytest.raises(InvalidArgumentError, match=r"on 2 node\(s\) .* --trainer.num_nodes=3"):
        take_layout_from_slurm(SimpleNamespace(devices=4, num_nodes=3))


def fashion_mnist_args(tmp_path: Path) -> list[str]:
    return [
        *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.train_subset=512", "--data.val_subset=256",
        "--data.num_workers=0", "--data.batch_size=64", "--model.network.init_args.depth=20",
        "--model.network.init_args.expansion=8", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false", f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
    ]  # fmt: skip


@needs_fashion_mnist
def test_a_layout_mismatch_exits_at_once_with_a_clear_error(slurm_cluster, tmp_path):
    start = time.monotonic()
    run = slurm_cluster.run(
        "srun", "--nodes=1", "--ntasks-per-node=2", "--overcommit", LC_TRAIN, "fit",
        *fashion_mnist_args(tmp_path), "--trainer.strategy=ddp", "--trainer.devices=1",
        cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert time.monotonic() - start < 60
    assert run.returncode != 0
    assert run.stderr.count("lc-train: error: SLURM runs 2 task(s) per node (--ntasks-per-node=2)") == 2
    assert "Traceback" not in run.stderr


@pytest.mark.slow
@needs_fashion_mnist
@pytest.mark.parametrize("nodes, tasks_per_node", [(2, 1), (2, 2)])
def test_train_sbatch_trains_across_nodes_like_one_process(slurm_cluster, tmp_path, nodes, tasks_per_node):
    (tmp_path / "logs").mkdir()
    (tmp_path / "ranks.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: rank_weights.SaveRankWeights\n"
        f"      init_args: {{directory: {tmp_path / 'ranks'}}}\n"
    )
    env = {**slurm_cluster.ddp_env(), "PYTHONPATH": str(TESTS)}
    env["PATH"] = f"{Path(LC_TRAIN).parent}:{env['PATH']}"  # srun lc-train in the batch script
    command = [
        "sbatch", "--wait", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}", "--gres=none",
        "--cpus-per-task=1", "--overcommit", "--time=10", str(REPO / "scripts" / "slurm" / "train.sbatch"),
        *fashion_mnist_args(tmp_path), "--config", str(tmp_path / "ranks.yaml"), "--trainer.strategy=ddp",
    ]  # fmt: skip
    job = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    output = "".join(p.read_text() for p in (tmp_path / "logs").glob("slurm-*.out"))
    assert job.returncode == 0, job.stderr + output[-3000:] + slurm_cluster.logs()
    world = nodes * tasks_per_node
    assert f"Starting with {world} processes" in output
    job_id = job.stdout.split()[-1]  # "Submitted batch job <id>"
    run_dirs = list((tmp_path / "logs").glob("table1/fashion_mnist_lc_frozen/*"))
    assert [d.name for d in run_dirs] == [f"slurm-{job_id}"]  # rank 0 alone logs and checkpoints
    checkpoint = run_dirs[0] / "checkpoints" / "last.ckpt"
    assert torch.load(checkpoint, map_location="cpu", weights_only=False)["global_step"] == 512 // (64 * world)
    weights = [torch.load(tmp_path / "ranks" / f"rank{rank}.pt") for rank in range(world)]
    for other in weights[1:]:
        assert all(torch.equal(other[name], weights[0][name]) for name in weights[0])
    events = EventAccumulator(str(run_dirs[0]))
    events.Reload()
    logged_acc = events.Scalars("val/acc")[-1].value
    single = build_cli(["validate", *fashion_mnist_args(tmp_path), f"--ckpt_path={checkpoint}"])
    assert single.trainer.callback_metrics["val/acc"].item() == pytest.approx(logged_acc, abs=1e-6)
