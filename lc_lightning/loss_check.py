"""FiniteLossCheck: training stops at a loss that is not finite, without waiting for the GPU each step."""

import torch
import torch.distributed

from lc_lightning.errors import TrainingDivergedError


def reads_loss_late(device: torch.device) -> bool:
    """Whether the check on ``device`` reads each step's loss one step late: on a CUDA device, where
    reading it at once would make the host wait for every step to finish before it queues the next."""
    return device.type == "cuda"


class FiniteLossCheck:
    """Raises TrainingDivergedError, naming the step, once a training loss is not finite on any process.

    With ``late`` false the loss is read on the host at once (a CPU loses nothing by that). With
    ``late`` true, whether the loss is finite (and its value) is copied to the host without waiting,
    and read during the next step's ``check``, after that step's forward pass is queued, or at
    ``flush``; call ``flush`` before anything that must not see a diverged model (a checkpoint) and
    at the end of training. Under DDP the processes decide together (a sum of the flags on the
    device, or the strategy's ``reduce_boolean_decision`` when read at once), so all of them stop
    at the same step.
    """

    def __init__(self, strategy, late: bool) -> None:
        self.strategy = strategy
        self.late = late
        self._pending: tuple[torch.Tensor, torch.cuda.Event | None, str] | None = None

    def check(self, loss: torch.Tensor, where: str) -> None:
        """Check the loss of the step ``where`` describes ("step 7 (epoch 1, batch 2)"); raise for a
        loss that was not finite: this one, or with ``late`` the previous one."""
        if not self.late:
            if not self.strategy.reduce_boolean_decision(bool(torch.isfinite(loss)), all=True):
                raise _diverged(loss.item(), where)
            return
        loss = loss.detach().float()
        flag = (~torch.isfinite(loss)).float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(flag)  # queued on the device; the host does not wait
        values = torch.stack([flag, loss])
        if values.is_cuda:
            host = torch.empty(2, pin_memory=True)
            host.copy_(values, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
        else:
            host, event = values.cpu(), None
        previous, self._pending = self._pending, (host, event, where)
        _raise_if_diverged(previous)

    def flush(self) -> None:
        """Read the loss still to be read, if any; raise if it was not finite."""
        previous, self._pending = self._pending, None
        _raise_if_diverged(previous)


def _raise_if_diverged(pending: tuple[torch.Tensor, torch.cuda.Event | None, str] | None) -> None:
    if pending is None:
        return
    host, event, where = pending
    if event is not None:
        event.synchronize()
    if host[0] > 0:
        raise _diverged(host[1].item(), where)


def _diverged(loss: float, where: str) -> TrainingDivergedError:
    return TrainingDivergedError(f"the training loss is not finite ({loss} on this rank) at {where}; {STOPPED}")


def diverged_in_validation(step: int, epoch: int) -> TrainingDivergedError:
    """The error for a fit whose validation loss is not finite though its training losses were: the last
    steps of epoch ``epoch`` (up to step ``step``) broke the weights."""
    return TrainingDivergedError(
        f"the validation loss is not finite after step {step} (epoch {epoch}): the weights diverged in the epoch's "
        f"last steps; {STOPPED}"
    )


STOPPED = (
    "training stopped and the checkpoints written so far are kept. A lower --model.optimizer.lr or "
    "--trainer.precision=32-true may help."
)
