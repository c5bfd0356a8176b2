"""The paper's training recipe as it reaches torch: the optimizer, the schedule, the loss, the network.

Each test looks at what a real run hands on (the optimizer's parameter groups and the update it makes,
the learning rate of every step, the loss that is backpropagated, the tensor the network receives, the
shapes inside a residual block, the augmentation of every epoch, the robust accuracy of a model
built for it), never at the config values that should lead there.
"""

import math

import pytest
import torch
from helpers.cli import tiny_cifar_args
from helpers.data import tiny_cifar
from helpers.loaders import cifar_modules, epoch_batches, window_offsets
from lightning import Callback, Trainer
from lightning.pytorch.strategies import SingleDeviceStrategy
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
from torchvision import datasets

from lc_lightning.analysis.fgsm import fgsm_images, fgsm_robust
from lc_lightning.callbacks import FGSMAccuracy
from lc_lightning.cli import build_cli
from lc_lightning.data import CIFAR10DataModule
from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import spatial_convs
from lc_lightning.optim import PaperSGD

# The paper's recipe (PAPER.md, "Training recipe"); lc-train's defaults are expected to be these.
LR, MOMENTUM, WEIGHT_DECAY, LABEL_SMOOTHING = 0.01, 0.9, 0.01, 0.1
# A ResNet-LC-8-4x2 with frozen random spatial filters, without the analysis callbacks.
TINY_NETWORK = [
    "--model.network.init_args.width=4", "--model.network.init_args.expansion=2", "--trainer.callbacks=[]",
]  # fmt: skip
EPOCHS, STEPS_PER_EPOCH = 2, 5  # tiny CIFAR-10: 40 training images in batches of 8


class StepRecorder(Callback):
    """Records every training step of a fit: the batch, what the network receives and returns, the loss
    that is backpropagated, the learning rate the optimizer steps with; and the parameters around the
    first step."""

    def __init__(self) -> None:
        self.batches, self.network_inputs, self.logits, self.losses, self.lrs = [], [], [], [], []
        self.before_first_step = self.gradients = self.after_first_step = None
        self.final_lrs = None
        self._in_training_step = False

    def on_fit_start(self, trainer, pl_module) -> None:
        pl_module.network.register_forward_pre_hook(self._network_input)
        pl_module.network.register_forward_hook(self._network_output)

    def _network_input(self, module, args) -> None:
        if self._in_training_step:
            self.network_inputs.append(args[0].detach().clone())

    def _network_output(self, module, args, output) -> None:
        if self._in_training_step:
            self.logits.append(output.detach().clone())

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self._in_training_step = True
        self.batches.append(tuple(tensor.clone() for tensor in batch))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self._in_training_step = False
        self.lrs.append([group["lr"] for group in optimizer.param_groups])
        if self.before_first_step is None:
            trainable = [(name, p) for name, p in pl_module.named_parameters() if p.requires_grad]
            self.before_first_step = {name: p.detach().clone() for name, p in trainable}
            self.gradients = {name: p.grad.detach().clone() for name, p in trainable}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.losses.append(outputs["loss"].detach().clone())
        if self.after_first_step is None:
            self.after_first_step = {name: p.detach().clone() for name, p in pl_module.named_parameters()}

    def on_train_end(self, trainer, pl_module) -> None:
        self.final_lrs = [group["lr"] for group in trainer.optimizers[0].param_groups]


def recorded_fit_of(tmp_path, *args: str):
    """lc-train's cifar10_e32 model, data and trainer built by the CLI (ResNet-LC-8-4x2, frozen random,
    fp32, the device loader) with ``args`` on top, fitted for two epochs on a tiny CIFAR-10 written
    under ``tmp_path``, every step recorded: (cli, StepRecorder)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        root, _ = tiny_cifar(tmp_path / "cifar", monkeypatch, datasets.CIFAR10)
        monkeypatch.chdir(tmp_path)
        cli = build_cli([*tiny_cifar_args(root, *TINY_NETWORK, f"--trainer.max_epochs={EPOCHS}", *args)], run=False)
        recorder = StepRecorder()
        cli.trainer.callbacks.append(recorder)
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == EPOCHS * STEPS_PER_EPOCH == len(recorder.lrs)
    return cli, recorder


@pytest.fixture(scope="module")
def recorded_fit(tmp_path_factory):
    """The fit of recorded_fit_of with lc-train's defaults, shared by the tests of this module."""
    return recorded_fit_of(tmp_path_factory.mktemp("recipe"))


def optimized_and_frozen(cli) -> tuple[set[int], set[str]]:
    """The ids of the parameters the trainer's optimizer holds, and the names of the frozen ones (checked to
    be the spatial filters and nothing else)."""
    optimizer = cli.trainer.optimizers[0]
    optimized = {id(p) for group in optimizer.param_groups for p in group["params"]}
    frozen = {name for name, p in cli.model.named_parameters() if not p.requires_grad}
    assert frozen and all(name.endswith("parametrizations.weight.original0") for name in frozen)
    return optimized, frozen


def trainable_ids(cli, frozen: set[str]) -> set[int]:
    return {id(p) for name, p in cli.model.named_parameters() if name not in frozen}


def test_sgd_gets_nesterov_momentum_and_weight_decay_on_exactly_the_trainable_parameters(recorded_fit):
    """Pins the optimizer: SGD (PaperSGD), Nesterov momentum 0.9, lr 0.01 and weight decay 0.01 on every
    trainable parameter (pointwise, BN, FC), the frozen spatial filters not in it; and the
    first update it made is SGD's with that weight decay, p - lr (1 + m) (g + wd p), not the update
    without decay."""
    cli, recorder = recorded_fit
    optimizer = cli.trainer.optimizers[0]
    assert type(optimizer) is PaperSGD and isinstance(optimizer, torch.optim.SGD)
    for group in optimizer.param_groups:
        assert (group["weight_decay"], group["momentum"], group["nesterov"]) == (WEIGHT_DECAY, MOMENTUM, True)
        assert group["initial_lr"] == pytest.approx(LR) and group["dampening"] == 0
    optimized, frozen = optimized_and_frozen(cli)
    assert optimized == trainable_ids(cli, frozen)

    assert set(recorder.before_first_step) == set(dict(cli.model.named_parameters())) - frozen
    with_decay, without_decay = [], []
    for name, before in recorder.before_first_step.items():
        after, gradient = recorder.after_first_step[name].double(), recorder.gradients[name].double()
        before = before.double()
        step = LR * (1 + MOMENTUM)  # Nesterov's first step: the momentum buffer is the gradient itself
        with_decay.append((after - (before - step * (gradient + WEIGHT_DECAY * before))).abs().max().item())
        without_decay.append((after - (before - step * gradient)).abs().max().item())
    assert max(with_decay) < 1e-6  # float32 rounding
    assert max(without_decay) > 1e-5  # lr (1 + m) wd p: 1.9e-4 for a BN weight of 1


def test_the_cosine_schedule_steps_every_batch_and_anneals_to_zero_over_the_whole_run(recorded_fit):
    """Pins the schedule: cosine annealing stepped after every batch (not every epoch) with T_max = all
    optimizer steps of the run, so the lr SGD steps with at step t is lr (1 + cos(pi t / T)) / 2 and
    reaches 0 after the last step; no warm-up."""
    cli, recorder = recorded_fit
    total = EPOCHS * STEPS_PER_EPOCH
    (config,) = cli.trainer.lr_scheduler_configs
    assert isinstance(config.scheduler, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert (config.interval, config.frequency, config.scheduler.T_max) == ("step", 1, total)
    expected = [LR * (1 + math.cos(math.pi * step / total)) / 2 for step in range(total)]
    observed = [lrs[0] for lrs in recorder.lrs]
    assert all(len(set(lrs)) == 1 for lrs in recorder.lrs)  # one lr for all parameter groups
    assert observed == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert len(set(observed[:STEPS_PER_EPOCH])) == STEPS_PER_EPOCH  # it changes within an epoch
    assert recorder.final_lrs == pytest.approx([0.0] * len(recorder.final_lrs), abs=1e-12)


def test_the_backpropagated_loss_is_cross_entropy_with_label_smoothing(recorded_fit):
    """Pins the loss: the loss of every training step is the cross-entropy with label smoothing 0.1 of
    the logits the network returned for that batch, which differs from the plain cross-entropy."""
    _, recorder = recorded_fit
    assert len(recorder.logits) == len(recorder.losses) == len(recorder.batches)
    for logits, loss, (_, targets) in zip(recorder.logits, recorder.losses, recorder.batches, strict=True):
        smoothed = F.cross_entropy(logits, targets, label_smoothing=LABEL_SMOOTHING)
        plain = F.cross_entropy(logits, targets)
        assert loss.item() == pytest.approx(smoothed.item(), rel=1e-6)
        assert abs(smoothed.item() - plain.item()) > 1e-4  # far beyond the tolerance above


def test_the_network_receives_images_normalised_with_the_datasets_mean_and_std(recorded_fit):
    """Pins the input normalisation inside ImageClassifier: images in [0, 1] from the DataModule reach
    the network as (x - mean) / std with CIFAR-10's per-channel mean and std."""
    _, recorder = recorded_fit
    mean = torch.tensor(CIFAR10DataModule.mean).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10DataModule.std).view(1, 3, 1, 1)
    assert len(recorder.network_inputs) == len(recorder.batches)
    for received, (images, _) in zip(recorder.network_inputs, recorder.batches, strict=True):
        assert 0 <= images.min() and images.max() <= 1
        torch.testing.assert_close(received, (images - mean) / std, rtol=1e-6, atol=1e-6)


ADAMW = ["--model.optimizer=torch.optim.AdamW", "--model.optimizer.lr=0.003"]


@pytest.mark.parametrize("optimizer_args, optimizer_class, lr", [([], PaperSGD, LR), (ADAMW, torch.optim.AdamW, 0.003)])
def test_lr_reference_batch_scales_the_lr_by_batch_processes_and_accumulation(
    tiny_cifar10, tmp_path, monkeypatch, optimizer_args, optimizer_class, lr
):
    """Pins the linear lr scaling, for the default SGD and for AdamW: with lr_reference_batch the lr the
    optimizer steps with is lr x batch_size x world_size x accumulate_grad_batches / lr_reference_batch,
    and the schedule anneals that lr (two steps: the cosine's second lr is half of it). Two processes are
    simulated by the single-device strategy reporting a world of two (rank 0): what Lightning tells the
    module and the DataModule of a two-process run, whose sampler then takes half the images."""
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    args = [
        *TINY_NETWORK, *optimizer_args, "--model.lr_reference_batch=64", "--trainer.accumulate_grad_batches=3",
        "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=0", "--trainer.max_epochs=2",
    ]  # fmt: skip
    cli = build_cli(tiny_cifar_args(root, *args), run=False)
    recorder = StepRecorder()
    cli.trainer.callbacks.append(recorder)
    assert isinstance(cli.trainer.strategy, SingleDeviceStrategy)
    monkeypatch.setattr(cli.trainer.strategy, "world_size", 2)  # the strategy sets 1 for its one process
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.world_size == 2 and cli.trainer.train_dataloader.sampler.num_replicas == 2
    assert type(cli.trainer.optimizers[0]) is optimizer_class
    assert len(recorder.batches) == 6 and len(recorder.lrs) == 2  # per epoch one step of three accumulated batches
    scaled = lr * 8 * 2 * 3 / 64  # batch 8 per process, 2 processes, 3 batches accumulated
    assert [lrs[0] for lrs in recorder.lrs] == [pytest.approx(scaled), pytest.approx(scaled / 2)]
    assert all(len(set(lrs)) == 1 for lrs in recorder.lrs)  # every parameter group's lr alike
    assert [group["initial_lr"] for group in cli.trainer.optimizers[0].param_groups] == pytest.approx(recorder.lrs[0])


def test_adamw_named_on_the_command_line_gets_its_lr_the_schedule_and_exactly_the_trainable_parameters(tmp_path):
    """Pins an injected optimizer: ``--model.optimizer=torch.optim.AdamW --model.optimizer.lr=0.003`` trains
    with AdamW on exactly the trainable parameters (the frozen spatial filters not in it, and unchanged),
    its lr annealed by the default cosine, 0.003 (1 + cos(pi t / T)) / 2; its first update is AdamW's,
    p (1 - lr wd) - lr g / (|g| + eps) with weight decay 0.01."""
    cli, recorder = recorded_fit_of(tmp_path, *ADAMW)
    optimizer = cli.trainer.optimizers[0]
    assert type(optimizer) is torch.optim.AdamW
    for group in optimizer.param_groups:
        hyper = {name: group[name] for name in ("initial_lr", "weight_decay", "betas", "eps")}
        assert hyper == {"initial_lr": 0.003, "weight_decay": 0.01, "betas": (0.9, 0.999), "eps": 1e-8}
    optimized, frozen = optimized_and_frozen(cli)
    assert optimized == trainable_ids(cli, frozen)
    total = EPOCHS * STEPS_PER_EPOCH
    expected = [0.003 * (1 + math.cos(math.pi * step / total)) / 2 for step in range(total)]
    assert [lrs[0] for lrs in recorder.lrs] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert recorder.final_lrs == pytest.approx([0.0] * len(recorder.final_lrs), abs=1e-12)

    parameters = dict(cli.model.named_parameters())
    for name, before in recorder.before_first_step.items():
        before, gradient = before.double(), recorder.gradients[name].double()
        adamw = before * (1 - 0.003 * 0.01) - 0.003 * gradient / (gradient.abs() + 1e-8)
        assert (recorder.after_first_step[name].double() - adamw).abs().max().item() < 1e-6, name
    assert all(torch.equal(recorder.after_first_step[name], parameters[name]) for name in frozen)


def test_a_schedule_with_another_run_length_argument_gets_the_run_s_optimizer_steps(tmp_path):
    """Pins the RunLengthScheduleCallable contract on a schedule other than the cosine: PolynomialLR gets
    the run's optimizer steps as its total_iters, so its lr decays linearly, lr (1 - t / T), stepped
    every batch, and reaches 0 after the last step."""
    cli, recorder = recorded_fit_of(tmp_path, "--model.lr_scheduler=torch.optim.lr_scheduler.PolynomialLR")
    total = EPOCHS * STEPS_PER_EPOCH
    (config,) = cli.trainer.lr_scheduler_configs
    assert type(config.scheduler) is torch.optim.lr_scheduler.PolynomialLR
    assert (config.interval, config.scheduler.total_iters, config.scheduler.power) == ("step", total, 1.0)
    expected = [LR * (1 - step / total) for step in range(total)]
    assert [lrs[0] for lrs in recorder.lrs] == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert recorder.final_lrs == pytest.approx([0.0] * len(recorder.final_lrs), abs=1e-12)


def block_calls(network: nn.Module, images: torch.Tensor) -> dict[nn.Module, list]:
    """For each residual block of ``network`` (the blocks of its stages), in call order, the
    (module, input, output) of every spatial convolution it ran (LC-Blocks as one) and of itself."""
    blocks = [block for stage in network.stages for block in stage]
    spatial = [conv for _, conv in spatial_convs(network)]
    calls = {block: [] for block in blocks}
    owner = {conv: block for block in blocks for conv in block.modules() if conv in spatial}
    hooks = [
        module.register_forward_hook(
            lambda module, args, output: calls[owner.get(module, module)].append(
                (module, args[0].detach().clone(), output.detach().clone())
            )
        )
        for module in [*owner, *blocks]
    ]
    network(images)
    for hook in hooks:
        hook.remove()
    return calls


@pytest.mark.parametrize("expansion", [None, 2])
def test_a_residual_block_ends_in_relu_of_branch_plus_shortcut(expansion):
    """Pins the basic block's output: ReLU(BN(conv(ReLU(BN(conv(x))))) + shortcut(x)), in the blocks
    with an identity shortcut and in those with a 1x1 conv shortcut; the sum before the ReLU has
    negative values, so without the final ReLU the output would too."""
    torch.manual_seed(0)
    network = CifarResNet(10, 3, depth=14, width=4, expansion=expansion).eval()
    calls = block_calls(network, torch.rand(4, 3, 32, 32))
    shortcuts = set()
    for block, block_calls_ in calls.items():
        _, x, output = block_calls_[-1]  # the block's own call comes after its convolutions'
        with torch.no_grad():
            branch = block.bn2(block.conv2(torch.relu(block.bn1(block.conv1(x)))))
            summed = branch + block.shortcut(x)
        assert (summed < 0).any()
        assert output.min() >= 0 and (output == 0).any()
        torch.testing.assert_close(output, torch.relu(summed), rtol=1e-6, atol=1e-6)
        shortcuts.add(isinstance(block.shortcut, nn.Identity))
    assert shortcuts == {True, False}


@pytest.mark.parametrize("expansion", [None, 2])
def test_a_downsampling_block_halves_the_size_at_its_first_convolution(expansion):
    """Pins where the stride is: the first block of stages 2 and 3 halves the feature map at its first
    3x3 convolution (as the 1x1 shortcut does), its second convolution keeps the size; every other
    block keeps the size throughout (32 -> 16 -> 8 over the stages)."""
    torch.manual_seed(0)
    network = CifarResNet(10, 3, depth=14, width=4, expansion=expansion).eval()
    calls = block_calls(network, torch.rand(2, 3, 32, 32))
    sizes = []
    for stage_index, stage in enumerate(network.stages):
        for block_index, block in enumerate(stage):
            (_, x1, y1), (_, x2, y2), (module, x, y) = calls[block]
            assert module is block and torch.equal(x1, x) and x2.shape == y1.shape
            halves = stage_index > 0 and block_index == 0
            assert y1.shape[-1] == x1.shape[-1] // (2 if halves else 1)
            assert y2.shape[-1] == x2.shape[-1]
            sizes.append(y.shape[-1])
    assert sizes == [32, 32, 16, 16, 8, 8]


class Kinked(nn.Module):
    """Two classes for one-pixel images x in [0, 1]: logits (0, g(x)) with g(x) = x - 0.5 + 3 relu(0.4 - x),
    so class 1 wins where g > 0: below 0.35 and above 0.5. g rises with slope 1 above 0.4 and falls with
    slope -2 below, so an FGSM step can carry an image across the kink (0.41 -> 0.31 for class 1) from
    wrong to right."""

    def __init__(self, num_classes: int = 2, in_channels: int = 1) -> None:
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pixel = x.flatten(1)[:, 0]
        g = pixel - 0.5 + 3 * torch.relu(0.4 - pixel)
        return torch.stack([torch.zeros_like(g), g], dim=1)


EPSILON = 0.1
# image, target; clean prediction; after FGSM (epsilon 0.1, towards a higher loss)
KINKED_CASES = [
    (0.41, 1),  # g = -0.09: wrong; attacked 0.31, g = 0.08: right -> not robust (a clean error)
    (0.80, 1),  # g = 0.30: right; attacked 0.70, g = 0.20: right -> robust
    (0.55, 1),  # g = 0.05: right; attacked 0.45, g = -0.05: wrong -> not robust
    (0.45, 0),  # g = -0.05: right; attacked 0.55, g = 0.05: wrong -> not robust
    (0.90, 0),  # g = 0.40: wrong; attacked 1.00 (clamped), g = 0.50: wrong -> not robust
    (0.10, 1),  # g = 0.50: right; attacked 0.20, g = 0.30: right -> robust
]
KINKED_CLEAN = [False, True, True, True, False, True]
KINKED_ATTACKED = [True, True, False, False, False, True]


def kinked_batch() -> tuple[torch.Tensor, torch.Tensor]:
    images = torch.tensor([image for image, _ in KINKED_CASES]).view(-1, 1, 1, 1)
    return images, torch.tensor([target for _, target in KINKED_CASES])


def test_robust_accuracy_counts_only_images_right_before_and_after_the_attack():
    """Pins the robust accuracy's definition (PAPER.md): an image is robust only if it is classified
    correctly both clean and under FGSM; the image that the attack carries from wrong to right is not."""
    model = Kinked()
    images, targets = kinked_batch()
    with torch.no_grad():
        assert (model(images).argmax(1) == targets).tolist() == KINKED_CLEAN
    robust = fgsm_robust(model, images, targets, EPSILON)
    assert robust.tolist() == [c and a for c, a in zip(KINKED_CLEAN, KINKED_ATTACKED, strict=True)]
    with torch.no_grad():
        attacked = model(fgsm_images(model, images, targets, EPSILON)).argmax(1) == targets
    assert attacked.tolist() == KINKED_ATTACKED  # image 0: a clean error the attack corrects


def test_the_logged_fgsm_accuracy_counts_only_images_right_before_and_after_the_attack():
    """Pins FGSMAccuracy's ``val/fgsm_acc`` through ImageClassifier in a real validation: the fraction of
    images right both clean and attacked (2 of 6), below the clean accuracy (4 of 6), over two batches."""
    images, targets = kinked_batch()
    model = ImageClassifier(Kinked, 2, 1, mean=(0.0,), std=(1.0,))
    trainer = Trainer(
        accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[FGSMAccuracy(epsilon=EPSILON)],
    )  # fmt: skip
    trainer.validate(model, DataLoader(TensorDataset(images, targets), batch_size=4), verbose=False)
    both = sum(c and a for c, a in zip(KINKED_CLEAN, KINKED_ATTACKED, strict=True)) / len(KINKED_CASES)
    assert trainer.callback_metrics["val/acc"].item() == pytest.approx(sum(KINKED_CLEAN) / len(KINKED_CASES))
    assert trainer.callback_metrics["val/fgsm_acc"].item() == pytest.approx(both)


def test_the_device_loader_draws_new_crops_and_flips_every_epoch(tiny_cifar10):
    """Pins the device loader's augmentation across epochs: the crop offsets and flips of epoch 1 are new
    draws, both slot by slot in the batches and image by image, while epoch 0 iterated again repeats
    itself to the bit (the draws follow from the seed and the epoch)."""
    root, written = tiny_cifar10
    _, data = cifar_modules(root)
    originals = torch.cat([torch.from_numpy(pixels).view(-1, 3, 32, 32) for pixels, _ in written["train"]])
    loader = data.train_dataloader()
    draws = {}
    for number in (0, 1):
        batches = epoch_batches(loader, number)
        order = list(loader.sampler)
        images = (torch.cat([x for x, _ in batches]) * 255).round().to(torch.uint8)
        by_slot = window_offsets(images, originals[order], data.crop_padding)
        draws[number] = (by_slot, dict(zip(order, by_slot, strict=True)))
        if number == 0:
            again = epoch_batches(loader, 0)
            assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    slots_alike = sum(a == b for a, b in zip(draws[0][0], draws[1][0], strict=True))
    images_alike = sum(draws[0][1][index] == draws[1][1][index] for index in draws[0][1])
    # 2 x 9 x 9 = 162 equally likely draws: two epochs share a few by chance, not most
    assert slots_alike < len(originals) // 4 and images_alike < len(originals) // 4
    assert len(set(draws[1][0])) > 10
