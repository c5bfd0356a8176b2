"""ImageClassifier: the one LightningModule, wrapping an injected network."""

from collections.abc import Callable, Sequence

import torch
from jsonargparse.typing import PositiveInt
from lightning import LightningModule
from lightning.pytorch.cli import OptimizerCallable
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy

from lc_lightning.callbacks import FreezeSpatialConvs
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.loss_check import FiniteLossCheck, diverged_in_validation, reads_loss_late
from lc_lightning.nn import OwnSteps, check_lc_training, lc_parametrization, lc_step_scales
from lc_lightning.optim import PaperSGD, RunLengthScheduleCallable, UnitIntervalFromZero

NetworkFactory = Callable[[int, int], nn.Module]
"""Builds the network as ``factory(num_classes, in_channels)``, e.g. a network class."""


class ImageClassifier(LightningModule):
    """Trains an image classifier with the paper's recipe.

    Images enter in [0, 1]; the module normalises them with the dataset's ``mean``/``std``
    (buffers saved in checkpoints) before the network, so attacks and visualisations work
    in pixel space. Loss: cross-entropy with label smoothing. The optimizer and its learning-rate
    schedule are injected, by default the paper's: SGD with Nesterov momentum and weight decay,
    the learning rate annealed to 0 by a cosine stepped every batch over the whole run. The
    optimizer gets the parameters that require grad (``parameter_groups``), frozen ones are left
    out. Logs ``train/loss``, ``train/acc``, ``val/loss``, ``val/acc`` and, with more than 5
    classes, ``val/acc_top5`` (and the same ``test/*``). Under DDP every value is that of all the
    processes' images together: each training step's of the global batch, each evaluation's of the split.
    With ``freeze_spatial`` the module brings a ``FreezeSpatialConvs`` callback to the
    trainer, so the spatial filters stay frozen at their random initialisation. A loss that is
    not finite stops training with TrainingDivergedError naming the step (on a GPU one step
    later, lc_lightning.loss_check, so that the host never waits for a step to finish).
    Every argument, the configs of the network, optimizer and schedule included, is saved as a
    hyperparameter in checkpoints: ``ImageClassifier.load_from_checkpoint(path)`` rebuilds a
    module lc-train trained.

    Args:
        network: builds the network from (num_classes, in_channels), e.g. ``CifarResNet``
            with its other arguments bound (in a config: ``class_path`` + ``init_args``).
        num_classes, in_channels, mean, std: from the DataModule (the CLI links them).
        freeze_spatial: keep every spatial filter frozen at its random init ("frozen random").
        optimizer: the optimizer: the paper's SGD, or any torch one, e.g.
            ``--model.optimizer=torch.optim.AdamW --model.optimizer.lr=0.003``. It is built from
            ``parameter_groups()``, the trainable parameters. The default,
            lc_lightning.optim.PaperSGD: lr 0.01, Nesterov momentum 0.9, weight decay 0.01. A config
            that names another class keeps the values of the arguments both classes take (lr,
            weight_decay) unless it sets them.
        lr_scheduler: the learning-rate schedule, stepped every batch: a cosine to 0 over the whole
            run by default; ``torch.optim.lr_scheduler.PolynomialLR`` decays linearly. Any class
            whose first two arguments are the optimizer and the run's length in optimizer steps
            (lc_lightning.optim.RunLengthScheduleCallable); the default's T_max is every step.
        lr_reference_batch: if set, the learning rates are those of a global batch of this many
            images, scaled linearly to the actual one (batch per process x processes x accumulated
            batches), so one config fits any number of GPUs and nodes. ``None``: used as they are.
        label_smoothing: of the cross-entropy loss, in [0, 1).
        channels_last: keep the network's weights and its inputs in the channels-last memory
            format (NHWC). The same results up to floating-point rounding (other kernels). On the
            CPU it is left off for a network with a convolution that torch breaks there in it
            (``_breaks_channels_last_on_cpu``): decided for the device the network runs on, at
            ``setup`` and in every forward. What it gains: docs/speed.md, "Training throughput".
        compile: compile the network with ``torch.compile`` (in place, so checkpoints keep
            their parameter names); the first steps take longer while it compiles. Off by
            default; what it gains: docs/speed.md, "Training throughput".
    """

    def __init__(
        self,
        network: NetworkFactory,
        num_classes: int,
        in_channels: int,
        mean: Sequence[float],
        std: Sequence[float],
        freeze_spatial: bool = False,
        optimizer: OptimizerCallable = PaperSGD,
        lr_scheduler: RunLengthScheduleCallable = torch.optim.lr_scheduler.CosineAnnealingLR,
        lr_reference_batch: PositiveInt | None = None,
        label_smoothing: UnitIntervalFromZero = 0.1,
        channels_last: bool = True,
        compile: bool = False,
    ) -> None:
        super().__init__()
        if len(mean) != in_channels or len(std) != in_channels:
            raise InvalidArgumentError(
                f"mean and std need {in_channels} values (one per channel), got {mean} and {std}"
            )
        # a plain number in the checkpoint's hyperparameters, not the parser's range-checked subclass
        lr_reference_batch = None if lr_reference_batch is None else int(lr_reference_batch)
        self.save_hyperparameters()
        # kept as given: under lc-train the hyperparameters hold the config of these callables
        self.optimizer, self.lr_scheduler = optimizer, lr_scheduler
        self.network = network(num_classes, in_channels)
        check_lc_training(self.network, freeze_spatial)
        if channels_last:
            _convolutions_to_memory_format(self.network, torch.channels_last)
        self._weights_channels_last = channels_last  # the format the weights are in (_runs_channels_last)
        self._breaks_channels_last_on_cpu = any(map(_breaks_channels_last_on_cpu, self.network.modules()))
        if compile:
            self.network.compile()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.val_metrics = _evaluation_metrics(num_classes)
        self.test_metrics = _evaluation_metrics(num_classes)
        self._loss_check: FiniteLossCheck | None = None  # made by on_fit_start
        self._own_steps: OwnSteps | None = None  # made by configure_optimizers
        self._evaluation_loss_sums: torch.Tensor | None = None  # made at the start of each evaluation epoch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits for images in [0, 1] of shape (N, in_channels, H, W)."""
        normalized = (images - self.mean) / self.std
        if self._runs_channels_last(normalized.device):
            normalized = normalized.contiguous(memory_format=torch.channels_last)
        return self.network(normalized)

    def setup(self, stage: str) -> None:
        self._runs_channels_last(self.trainer.strategy.root_device)  # the weights settled before DDP wraps them

    def _runs_channels_last(self, device: torch.device) -> bool:
        """Whether the network runs in channels-last on ``device``: ``channels_last``, except on the CPU for a
        network with a convolution that breaks there in it. Puts the weights of the convolutions in the format
        where they are not in it yet, so that weights and inputs always agree (a channels-last weight alone
        makes torch run the convolution in channels-last)."""
        channels_last = self.hparams.channels_last and not (device.type == "cpu" and self._breaks_channels_last_on_cpu)
        if channels_last != self._weights_channels_last:
            _convolutions_to_memory_format(
                self.network, torch.channels_last if channels_last else torch.contiguous_format
            )
            self._weights_channels_last = channels_last
        return channels_last

    def _step(self, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits, targets, loss) of a batch."""
        images, targets = batch
        logits = self(images)
        return logits, targets, F.cross_entropy(logits, targets, label_smoothing=self.hparams.label_smoothing)

    def _evaluation_step(self, batch, stage: str, metrics: nn.ModuleDict) -> None:
        """Add the batch to ``stage``'s loss (``_log_evaluation_loss``) and metrics, which combine the processes'
        counts at the epoch's end."""
        logits, targets, loss = self._step(batch)
        self._evaluation_loss_sums[0] += loss.detach().float() * targets.numel()
        self._evaluation_loss_sums[1] += targets.numel()
        for name, metric in metrics.items():
            metric(logits, targets)
            self.log(f"{stage}/{name}", metric, on_epoch=True, prog_bar=name == "acc")

    def _start_evaluation_loss(self) -> None:
        self._evaluation_loss_sums = torch.zeros(2, device=self.device)  # the images' losses summed, the images

    def _log_evaluation_loss(self, stage: str) -> torch.Tensor:
        """Log and return ``stage``/loss, the mean over every image the processes evaluated: their sums, added up
        once. (Lightning's ``sync_dist`` averages the processes' image counts as integers, which truncates where
        the processes' shares differ in size.)"""
        total, count = self.trainer.strategy.reduce(self._evaluation_loss_sums, reduce_op="sum")
        loss = total / count
        self.log(f"{stage}/loss", loss, prog_bar=True)
        return loss

    def _log_training_step(self, logits: torch.Tensor, targets: torch.Tensor, loss: torch.Tensor) -> None:
        """Log train/loss and train/acc of the global batch: the processes' sums of losses, right answers and
        images, gathered and added up (an all-gather, which unlike the strategy's reduce puts no barrier, and so
        no wait for the device, into every step). The epoch values Lightning makes of them, means over the steps
        weighted by this process's batch sizes (the same on every process: the training shards are equal), are
        those of all the epoch's images."""
        size = targets.numel()
        correct = (logits.argmax(dim=1) == targets).sum().float()
        sums = torch.stack([loss.detach().float() * size, correct, correct.new_full((), size)])
        loss_sum, correct, count = self.all_gather(sums).view(-1, 3).sum(dim=0)  # one row per process
        self.log("train/loss", loss_sum / count, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", correct / count, on_step=True, on_epoch=True, prog_bar=True)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        logits, targets, loss = self._step(batch)
        self._log_training_step(logits, targets, loss)
        self._loss_check.check(loss, f"step {self.global_step} (epoch {self.current_epoch}, batch {batch_idx})")
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        self._own_steps.take_gradients()  # the LC-Blocks that take their own step (lc_form=gram)

    def on_fit_start(self) -> None:
        self._loss_check = FiniteLossCheck(self.trainer.strategy, late=reads_loss_late(self.device))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self._loss_check is not None:  # no checkpoint of a diverged model
            self._loss_check.flush()

    def on_train_end(self) -> None:
        self._loss_check.flush()

    def on_validation_epoch_start(self) -> None:
        if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking:
            self._loss_check.flush()  # a training loss still to be read comes first
        self._start_evaluation_loss()

    def validation_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "val", self.val_metrics)

    def on_validation_epoch_end(self) -> None:
        """In a fit, a validation loss that is not finite on any process stops training before the epoch's
        checkpoint is written: the epoch's last steps broke the weights after its last finite training loss.
        (The loss every process logs is that of all of them, so they all decide alike.)"""
        loss = self._log_evaluation_loss("val")
        if self.trainer.state.fn != "fit" or self.trainer.sanity_checking:
            return
        if not torch.isfinite(loss):
            raise diverged_in_validation(self.global_step, self.current_epoch)

    def on_test_epoch_start(self) -> None:
        self._start_evaluation_loss()

    def test_step(self, batch, batch_idx: int) -> None:
        self._evaluation_step(batch, "test", self.test_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_evaluation_loss("test")

    def configure_callbacks(self):
        return [FreezeSpatialConvs()] if self.hparams.freeze_spatial else []

    def parameter_groups(self) -> list[dict]:
        """The parameter groups the optimizer is built from: every parameter that requires grad;
        frozen parameters are in none, so they get no update and no weight decay. P of each folded
        or explicit LC-Block built with ``normalized_lc_step`` is a group of its own with its
        ``lc_step_scale`` (``lc_lightning.nn.lc_step_scales``): configure_optimizers multiplies that
        group's lr by it and divides its weight decay by it."""
        scaled = [(p, scale) for p, scale in lc_step_scales(self.network) if p.requires_grad]
        scaled_ids = {id(p) for p, _ in scaled}
        groups = [{"params": [p for p in self.parameters() if p.requires_grad and id(p) not in scaled_ids]}]
        return groups + [{"params": [p], "lc_step_scale": scale} for p, scale in scaled]

    def lr_scale(self) -> float:
        """The factor every learning rate of the optimizer is multiplied by: the global batch (batch
        size per process x processes x gradient accumulation) over ``lr_reference_batch``; 1 without it."""
        reference = self.hparams.lr_reference_batch
        if reference is None:
            return 1.0
        trainer = self.trainer
        if getattr(trainer.datamodule, "batch_size", None) is None:
            raise InvalidArgumentError("lr_reference_batch needs a DataModule with a batch_size to scale lr to")
        return trainer.datamodule.batch_size * trainer.world_size * trainer.accumulate_grad_batches / reference

    def configure_optimizers(self):
        """The optimizer, built from ``parameter_groups()`` with every group's lr scaled by ``lr_scale()``,
        and the schedule, built from it and the run's length in optimizer steps, stepped every step.
        Arguments that torch refuses (a ValueError: a negative lr, Nesterov without momentum...) raise
        InvalidArgumentError naming the option."""
        try:
            optimizer = self.optimizer(self.parameter_groups())
        except ValueError as error:
            raise InvalidArgumentError(f"--model.optimizer: {error}") from None
        check_lc_training(self.network, self.hparams.freeze_spatial, optimizer, self.trainer.gradient_clip_val)
        self._own_steps = OwnSteps(self.network, optimizer)
        scale = self.lr_scale()
        for group in optimizer.param_groups:  # before the scheduler records each group's initial_lr
            step_scale = group.get("lc_step_scale", 1.0)
            group["lr"] *= scale * step_scale
            if "weight_decay" in group:
                group["weight_decay"] /= step_scale
        total_steps = max(1, int(self.trainer.estimated_stepping_batches))
        try:
            scheduler = self.lr_scheduler(optimizer, total_steps)
        except ValueError as error:
            raise InvalidArgumentError(
                f"--model.lr_scheduler: {str(error).rstrip('.')} (it is given the optimizer and the run's "
                f"length, {total_steps} optimizer steps, as its first two arguments)"
            ) from None
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def _convolutions_to_memory_format(network: nn.Module, memory_format: torch.memory_format) -> None:
    """Put the weight of every convolution that runs as one in ``memory_format``. S and P of a
    LC-Block that holds them only feed its combined weight (a matrix product) and stay as they
    are: converted, they would be copied back every step."""
    for module in network.modules():
        block = lc_parametrization(module)
        if isinstance(module, nn.Conv2d) and not (block and block.holds_factors):
            module.to(memory_format=memory_format)


def _breaks_channels_last_on_cpu(module: nn.Module) -> bool:
    """A convolution whose channels-last backward torch gets wrong on the CPU: 1x1, stride > 1, fewer
    than 16 input channels (CifarResNet's stride-2 shortcuts with a width under 16). Verified with torch
    2.14.1 (oneDNN 3.12, its ``jit_1x1`` weight gradient, fp32): with AVX-512 it writes past its
    workspace once the output has about 28x28 pixels (56 px inputs) or more, which kills the process
    ("double free or corruption", exit 134, or a segfault, 139) at 64 and 224 px; with oneDNN held to
    AVX2 (``ONEDNN_MAX_CPU_ISA=AVX2``, the kernels of AVX2-only CPUs) it gives wrong weight gradients
    or hangs for fewer than 8 input channels from 8 px inputs on. With 16 to 48 input channels (up to
    224 px), 1x1 stride 1, 2x2/2, 3x3/1 and /2, 4x4/4, 5x5/2, 7x7/2, and in the contiguous format, the
    gradients are those of float64 up to float32 rounding."""
    return (
        isinstance(module, nn.Conv2d)
        and module.kernel_size == (1, 1)
        and max(module.stride) > 1
        and module.in_channels < 16
    )


def _accuracy(num_classes: int, top_k: int = 1) -> MulticlassAccuracy:
    """Top-k accuracy. Its checks of the targets are off: they read the targets on the host, which
    waits for the device every step, and cross_entropy has checked them already."""
    return MulticlassAccuracy(num_classes, top_k=top_k, average="micro", validate_args=False)


def _evaluation_metrics(num_classes: int) -> nn.ModuleDict:
    """Top-1 accuracy, and top-5 where there are more than 5 classes (ImageNet's second figure)."""
    metrics = {"acc": _accuracy(num_classes)}
    if num_classes > 5:
        metrics["acc_top5"] = _accuracy(num_classes, top_k=5)
    return nn.ModuleDict(metrics)
