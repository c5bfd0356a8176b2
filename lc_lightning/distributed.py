"""lc-train's processes: this process's rank and SLURM's task layout before the Trainer exists, the accelerator,
and errors that stop every DDP process together."""

import os

import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.pytorch.utilities import rank_zero_only

from lc_lightning.errors import InvalidArgumentError, UserInputError


def under_slurm() -> bool:
    """Whether this process is a task of an srun (Lightning's SLURMEnvironment.detect)."""
    return SLURMEnvironment.detect()


def global_rank() -> int:
    """This process's rank in its run before the Trainer exists: its SLURM task's under srun, else what
    Lightning reads from the environment (0 for the process a user started)."""
    return int(os.environ["SLURM_PROCID"]) if under_slurm() else rank_zero_only.rank


def restarted_by_slurm() -> bool:
    """Whether SLURM restarted this job (requeued or preempted it) at least once."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0")) > 0


def take_layout_from_slurm(trainer) -> None:
    """Under srun, take ``devices`` and ``num_nodes`` of the trainer config from SLURM's task layout.

    lc-train runs one process per device: each SLURM task is one process, so ``devices`` must be
    the tasks per node and ``num_nodes`` the job's nodes. ``devices`` "auto" or -1 and
    ``num_nodes`` 1 (the defaults) become SLURM's values; other values that disagree with SLURM
    raise InvalidArgumentError at once, in every task, rather than failing or hanging later.
    Outside srun nothing changes.
    """
    if not under_slurm():
        return
    tasks_per_node = os.environ.get("SLURM_NTASKS_PER_NODE", "1")
    nodes = os.environ.get("SLURM_NNODES", "1")
    if not (tasks_per_node.isdigit() and nodes.isdigit()):
        return  # a heterogeneous layout such as "2(x3)": left to Lightning's own checks
    tasks_per_node, nodes = int(tasks_per_node), int(nodes)
    if trainer.devices in ("auto", -1, "-1"):
        trainer.devices = tasks_per_node
    elif str(trainer.devices) != str(tasks_per_node):
        raise InvalidArgumentError(
            f"SLURM runs {tasks_per_node} task(s) per node (--ntasks-per-node={tasks_per_node}) but "
            f"--trainer.devices={trainer.devices}; lc-train runs one process per device, so set "
            f"--trainer.devices={tasks_per_node} or sbatch/srun --ntasks-per-node={trainer.devices}"
        )
    if trainer.num_nodes == 1:
        trainer.num_nodes = nodes
    elif trainer.num_nodes != nodes:
        raise InvalidArgumentError(
            f"SLURM runs the job on {nodes} node(s) (--nodes={nodes}) but --trainer.num_nodes="
            f"{trainer.num_nodes}; set --trainer.num_nodes={nodes} or sbatch/srun --nodes={trainer.num_nodes}"
        )


def check_accelerator(trainer) -> None:
    """InvalidArgumentError where the trainer config asks for a GPU and torch finds none on this machine."""
    accelerator = trainer.accelerator
    if not (isinstance(accelerator, str) and accelerator in ("gpu", "cuda")):
        return
    if torch.cuda.is_available() or (accelerator == "gpu" and torch.backends.mps.is_available()):
        return
    raise InvalidArgumentError(
        f"--trainer.accelerator={accelerator}: torch {torch.__version__} finds no GPU on this machine; train on "
        "the CPU with --trainer.accelerator=cpu (or --config configs/trainer/cpu.yaml in place of gpu.yaml/ddp.yaml)"
    )


def fail_on_every_rank(error: Exception | None) -> None:
    """Raise ``error`` here, and on every other process of the run a UserInputError carrying
    its type and message.

    Every process must call this at the same point (a collective). Without it, a process that
    stops with an error (say, a dataset missing on its node) leaves the others waiting for it
    at their next collective: a hang with NCCL, a crash without the reason with gloo. Outside a
    distributed run it just raises ``error`` if there is one.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        if error is not None:
            raise error
        return
    messages = [None] * dist.get_world_size()
    message = None if error is None else str(error) if isinstance(error, UserInputError) else repr(error)
    dist.all_gather_object(messages, message)
    if error is not None:
        raise error
    failed = [(rank, message) for rank, message in enumerate(messages) if message is not None]
    if failed:
        rank, message = failed[0]
        raise UserInputError(f"process {rank} stopped: {message}")
