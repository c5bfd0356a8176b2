"""lc-train on SLURM: the task layout sets the trainer's, runs are named after their job, train.sbatch trains
across nodes, and a job signalled in the middle of an epoch requeues itself and resumes with the next batch."""

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from helpers.cli import CONFIGS, config_args
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from helpers.runs import assert_same_state, assert_same_training
from helpers.slurm import wait_until
from jsonargparse import Namespace
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.cli import build_cli
from lc_lightning.distributed import take_layout_from_slurm
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.run_arguments import pin_run_directory
from lc_lightning.run_directory import RunDirectory

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


def tensorboard_trainer_config(save_dir: Path, version=None) -> Namespace:
    logger_args = Namespace(save_dir=str(save_dir), name="table1/x", version=version)
    logger = Namespace(class_path="lightning.pytorch.loggers.TensorBoardLogger", init_args=logger_args)
    return Namespace(logger=logger, default_root_dir=None)


def test_a_run_directory_is_fixed_in_the_config_before_the_run_named_after_its_slurm_job(monkeypatch, tmp_path):
    for name in ("SLURM_NTASKS", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_STEP_ID"):
        monkeypatch.delenv(name, raising=False)
    runs = tmp_path / "table1" / "x"
    for name in ["version_0", "version_2", "slurm-7"]:
        (runs / name).mkdir(parents=True)
    trainer = tensorboard_trainer_config(tmp_path)
    run, created = pin_run_directory(trainer)
    assert run.path == created == runs / "version_3" and run.path.is_dir()  # the next free version, taken
    assert (trainer.logger.init_args.version, trainer.default_root_dir) == ("version_3", str(runs / "version_3"))
    as_srun_task(monkeypatch, tasks_per_node=1, nodes=1)
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    trainer = tensorboard_trainer_config(tmp_path)
    assert pin_run_directory(trainer) == (RunDirectory(runs / "slurm-123"), runs / "slurm-123")
    assert (trainer.logger.init_args.version, trainer.default_root_dir) == ("slurm-123", str(runs / "slurm-123"))
    assert pin_run_directory(tensorboard_trainer_config(tmp_path)) == (RunDirectory(runs / "slurm-123"), None)
    for version, directory in (("mine", "mine"), (4, "version_4")):
        given = tensorboard_trainer_config(tmp_path, version=version)
        assert pin_run_directory(given) == (RunDirectory(runs / directory), runs / directory)
        assert (given.logger.init_args.version, given.default_root_dir) == (version, str(runs / directory))


def fashion_mnist_args(tmp_path: Path) -> list[str]:
    return [
        *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.train_subset=512", "--data.val_subset=256",
        "--data.num_workers=0", "--data.batch_size=64", "--model.network.init_args.depth=20",
        "--model.network.init_args.expansion=8", "--trainer.accelerator=cpu", "--trainer.max_epochs=1",
        "--trainer.enable_progress_bar=false", f"--trainer.logger.init_args.save_dir={tmp_path / 'logs'}",
    ]  # fmt: skip


def submit_train_sbatch(slurm_cluster, tmp_path, options: list[str], args: list[str]) -> subprocess.CompletedProcess:
    """sbatch lc_lightning/slurm/train.sbatch with ``options`` for sbatch and ``args`` for lc-train fit,
    on CPU (no GPU gres), in tmp_path with tests/ importable; returns sbatch's completed process."""
    env = {**slurm_cluster.ddp_env(), "PYTHONPATH": str(TESTS)}
    env["PATH"] = f"{Path(LC_TRAIN).parent}:{env['PATH']}"  # srun lc-train in the batch script
    command = [
        "sbatch", *options, "--gres=none", "--cpus-per-task=1", "--overcommit", "--time=10",
        str(REPO / "lc_lightning" / "slurm" / "train.sbatch"), *args,
    ]  # fmt: skip
    return subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)


@needs_fashion_mnist
@pytest.mark.slow
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
def test_train_sbatch_trains_across_nodes_like_one_process(slurm_cluster, tmp_path):
    # Two tasks on each of two nodes: ranks that share a node and ranks on another (one task per node
    # is what the srun test of test_slurm_cluster.py runs).
    nodes, tasks_per_node = 2, 2
    args = [*fashion_mnist_args(tmp_path), "--model.network.init_args.depth=8"]
    (tmp_path / "logs").mkdir()
    (tmp_path / "ranks.yaml").write_text(
        f"trainer:\n  callbacks:\n    - class_path: helpers.rank_weights.SaveRankWeights\n"
        f"      init_args: {{directory: {tmp_path / 'ranks'}}}\n"
    )
    job = submit_train_sbatch(
        slurm_cluster, tmp_path, ["--wait", f"--nodes={nodes}", f"--ntasks-per-node={tasks_per_node}"],
        [*args, "--config", str(tmp_path / "ranks.yaml"), "--trainer.strategy=ddp"],
    )  # fmt: skip
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
        assert_same_state(other, weights[0])
    events = EventAccumulator(str(run_dirs[0]))
    events.Reload()
    logged_acc = events.Scalars("val/acc")[-1].value
    single = build_cli(["validate", *args, f"--ckpt_path={checkpoint}"])
    assert single.trainer.callback_metrics["val/acc"].item() == pytest.approx(logged_acc, abs=1e-6)


def job_state(slurm_cluster, job_id: str) -> str:
    """The job's state as squeue prints it (PENDING, RUNNING, ...), "" once it has left the queue,
    "unknown" where squeue failed (a busy controller)."""
    listing = slurm_cluster.run("squeue", "-h", "-j", job_id, "-o", "%T")
    if listing.returncode == 0 or "Invalid job id" in listing.stderr:  # a job long gone is an invalid id
        return listing.stdout.strip()
    return "unknown"


def start_requeued_job_now(slurm_cluster, job_id: str) -> None:
    """Start a requeued job at once rather than after the two minutes Slurm holds it back. Started in
    the instant its old incarnation ended, the node refused it ("Job credential revoked"): first wait
    until the old steps are gone, and a moment more."""

    def steps() -> str | None:
        listing = slurm_cluster.run("squeue", "-h", "-s", "-j", job_id, "-o", "%i")
        return listing.stdout.strip() if listing.returncode == 0 else None

    wait_until(lambda: steps() == "", 60, "the old job's steps end")
    time.sleep(2)
    slurm_cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")


@pytest.mark.slow
@needs_fashion_mnist
def test_a_job_signalled_in_the_middle_of_an_epoch_requeues_itself_and_resumes_bitwise(slurm_cluster, tmp_path):
    (tmp_path / "logs").mkdir()
    steps_per_epoch, pause_at = 1024 // 64, 20  # epoch 1, batch 4
    pause = (
        f"{{class_path: helpers.interruptions.PauseAtStep, "
        f"init_args: {{step: {pause_at}, marker: {tmp_path / 'paused'}}}}}"
    )
    args = [*fashion_mnist_args(tmp_path), "--data.train_subset=1024", "--trainer.max_epochs=3",
            "--trainer.log_every_n_steps=1", "--model.network.init_args.depth=8"]  # fmt: skip
    layout = ["--nodes=1", "--ntasks-per-node=1", "--export=ALL,OMP_NUM_THREADS=1"]  # the same numerics in both jobs
    uninterrupted = submit_train_sbatch(slurm_cluster, tmp_path, layout, args).stdout.split()[-1]
    job_id = submit_train_sbatch(slurm_cluster, tmp_path, layout, [*args, f"--trainer.callbacks+={pause}"])
    job_id = job_id.stdout.split()[-1]
    runs = tmp_path / "logs" / "table1" / "fashion_mnist_lc_frozen"
    run = runs / f"slurm-{job_id}"
    wait_until(lambda: (tmp_path / "paused").exists(), 240, f"the job reaches step {pause_at}")
    # What --signal=SIGUSR1@90 does before the time limit: signal every task of the job.
    assert slurm_cluster.run("scancel", "--signal=USR1", job_id).returncode == 0
    wait_until(lambda: job_state(slurm_cluster, job_id) == "PENDING", 60, "the job requeues itself")
    assert "Restarts=1" in slurm_cluster.run("scontrol", "show", "job", job_id).stdout
    requeued = torch.load(run / "checkpoints" / "requeue.ckpt", weights_only=False)
    assert requeued["global_step"] == pause_at + 1  # saved at the end of the step it was signalled in
    assert requeued["FashionMNISTDataModule"]["train_position"] == [1, pause_at + 1 - steps_per_epoch]
    start_requeued_job_now(slurm_cluster, job_id)
    for job in (job_id, uninterrupted):
        wait_until(lambda job=job: job_state(slurm_cluster, job) in ("", "COMPLETED"), 300, f"job {job} ends")
    log = (tmp_path / "logs" / f"slurm-{job_id}.out").read_text()
    assert "Received SIGUSR1" in log and f"Requeued SLURM job {job_id}" in log, log[-3000:]
    assert f"Restored all states from the checkpoint at {run / 'checkpoints' / 'requeue.ckpt'}" in log
    assert RunDirectory(run).status().state == "finished"
    assert_same_training(run, runs / f"slurm-{uninterrupted}", steps=3 * steps_per_epoch)
