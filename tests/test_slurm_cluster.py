"""The local SLURM cluster of ``slurm_cluster`` really schedules (two nodes, srun steps, batch jobs),
and lc-train under srun on it is one DDP run over both nodes.

The first tests guard the infrastructure the multi-node tests stand on: a cluster that runs both
tasks on one node, loses batch output or reports a failed job as done fails here first.
"""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers.cli import CONFIGS, config_args
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist


def test_srun_runs_one_task_on_each_node(slurm_cluster):
    report = 'echo "$SLURM_PROCID $SLURM_NODEID $SLURMD_NODENAME"'
    step = slurm_cluster.run("srun", "--nodes=2", "--ntasks=2", "sh", "-c", report)

    assert step.returncode == 0, step.stderr + slurm_cluster.logs()
    assert sorted(step.stdout.splitlines()) == ["0 0 n1", "1 1 n2"]


def test_sbatch_wait_runs_a_two_node_batch_job(slurm_cluster, tmp_path):
    script = tmp_path / "job.sh"
    lines = ["#!/bin/sh", "#SBATCH --nodes=2", "srun --ntasks-per-node=1 sh -c 'echo $SLURMD_NODENAME' > nodes.txt"]
    script.write_text("\n".join(lines) + "\n")

    job = slurm_cluster.run("sbatch", "--wait", str(script), cwd=tmp_path)

    assert job.returncode == 0, job.stderr + slurm_cluster.logs()
    assert sorted((tmp_path / "nodes.txt").read_text().split()) == ["n1", "n2"]


def test_sbatch_wait_reports_a_failed_job(slurm_cluster, tmp_path):
    job = slurm_cluster.run("sbatch", "--wait", "--output=/dev/null", "--wrap", "exit 3", cwd=tmp_path)

    assert job.returncode == 3, job.stderr


def test_job_output_goes_where_output_says(slurm_cluster, tmp_path):
    (tmp_path / "logs").mkdir()  # slurm creates the file, not its folder
    output_option = f"--output={tmp_path}/logs/job-%j.out"
    command = 'echo "job $SLURM_JOB_ID on $SLURMD_NODENAME"'
    job = slurm_cluster.run("sbatch", "--wait", "--parsable", output_option, "--wrap", command, cwd=tmp_path)

    assert job.returncode == 0, job.stderr + slurm_cluster.logs()
    job_id = job.stdout.strip()
    output = (tmp_path / "logs" / f"job-{job_id}.out").read_text()
    assert output in {f"job {job_id} on n1\n", f"job {job_id} on n2\n"}


@pytest.mark.slow
@needs_fashion_mnist
def test_lc_train_under_srun_is_one_ddp_run_over_both_nodes(slurm_cluster, tmp_path):
    # Lightning's SLURMEnvironment takes the ranks from srun. 512 training images at batch 64 over
    # 2 ranks are 4 steps; one process alone would take 8.
    env = slurm_cluster.ddp_env()
    command = [
        "srun", "--nodes=2", "--ntasks-per-node=1", str(Path(sys.executable).parent / "lc-train"), "fit",
        *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.train_subset=512", "--data.val_subset=256",
        "--data.num_workers=0", "--data.batch_size=64",
        "--model.network.init_args.depth=8", "--model.network.init_args.expansion=2",
        "--trainer.accelerator=cpu", "--trainer.strategy=ddp", "--trainer.devices=1", "--trainer.num_nodes=2",
        "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]  # fmt: skip
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)

    assert run.returncode == 0, run.stderr[-3000:] + slurm_cluster.logs()
    assert "All distributed processes registered. Starting with 2 processes" in run.stderr
    checkpoints = list(tmp_path.glob("**/checkpoints/last.ckpt"))
    assert len(checkpoints) == 1, checkpoints  # written by rank 0 only
    assert torch.load(checkpoints[0], map_location="cpu", weights_only=False)["global_step"] == 4
