"""Networks for the tests: small classifiers, their outputs and gradients, relative errors, and the fp64
trajectory of ResNet-LC-20 under the module's own recipe that the exact LC forms must follow."""

from functools import partial

import torch
from lightning import Trainer
from torch import nn

from helpers.loaders import RandomImages
from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import combined_weight, lc_blocks, lc_weights, set_lc_form


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """||value - reference|| / ||reference||, computed in float64 on the CPU."""
    value, reference = value.detach().double().cpu(), reference.detach().double().cpu()
    return ((value - reference).norm() / reference.norm()).item()


def outputs_and_grads(
    module: nn.Module, x: torch.Tensor, weights: list[torch.Tensor] | None = None, form: str | None = None
) -> list[torch.Tensor]:
    """[output, gradient of each of ``weights``...] of ``module`` (its LC-Blocks set to ``form`` if given) for
    input ``x``, for a loss that weighs each output element by a fixed random number, drawn in float64 so that it
    is the same in every dtype and on every device. ``weights`` are leaf tensors (an input that requires grad
    among them), by default every LC-Block's S and P; each of their gradients must be non-zero."""
    if form is not None:
        set_lc_form(module, form)
    if weights is None:
        weights = [weight for _, block in lc_blocks(module) for weight in lc_weights(block)]
    assert weights, "no weights to take gradients of"
    module.zero_grad()
    out = module(x)
    projection = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (out * projection.to(out.device, out.dtype)).sum().backward()
    grads = [weight.grad.clone() for weight in weights]
    assert all(grad.norm() > 0 for grad in grads)
    return [out.detach().clone(), *grads]


def replace_relus(module: nn.Module) -> None:
    """Replace every ReLU under ``module`` by a GELU (smooth: no kink for rounding to flip between two paths)."""
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.GELU())
        replace_relus(child)


def parameter_count(module: nn.Module) -> int:
    """How many numbers the parameters of ``module`` hold."""
    return sum(p.numel() for p in module.parameters())


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter of ``module``, by name."""
    return {name: p.detach().clone() for name, p in module.named_parameters()}


def classifier(**options) -> ImageClassifier:
    """An ImageClassifier of ResNet-LC-8-4x2 built from seed 0, with ImageClassifier's ``options``."""
    torch.manual_seed(0)
    network = partial(CifarResNet, depth=8, width=4, expansion=2)
    return ImageClassifier(network, 10, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), **options)


def train_step(model: ImageClassifier, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One SGD step; the logits before it."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    logits = model(images)
    torch.nn.functional.cross_entropy(logits, labels).backward()
    optimizer.step()
    return logits


def lc_resnet(form: str, dtype: torch.dtype = torch.float64, expansion: int = 8) -> CifarResNet:
    """ResNet-LC-20-16xE with its LC-Blocks in ``form``, built in ``dtype`` from seed 0 (the same S and P in
    every form)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        torch.manual_seed(0)
        return CifarResNet(10, 3, expansion=expansion, lc_form=form)
    finally:
        torch.set_default_dtype(default)


def trained_30_steps(network: nn.Module, freeze_spatial: bool) -> dict[str, torch.Tensor]:
    """``network`` (fp64) after 30 steps of the module's own recipe (SGD with Nesterov momentum 0.9, weight decay
    0.01, cosine per step, label smoothing) on ``RandomImages``, BN in training mode: its combined weights and
    every other parameter and buffer. Fails unless the stem's combined weight moved."""
    start = combined_weight(network.stem[0]).detach().clone()
    module = ImageClassifier(
        lambda classes, channels: network, 10, 3, (0.5,) * 3, (0.25,) * 3, freeze_spatial=freeze_spatial
    )
    trainer = Trainer(
        accelerator="cpu", max_steps=30, precision="64-true", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, datamodule=RandomImages())
    optimizer = trainer.optimizers[0]
    assert trainer.global_step == 30
    assert type(optimizer).__name__ in ("SGD", "PaperSGD") and optimizer.param_groups[0]["nesterov"]
    state = {name: value for name, value in network.state_dict().items() if ".parametrizations." not in name}
    state |= {name: combined_weight(conv).detach() for name, conv in lc_blocks(network)}
    assert (state["stem.0"] - start).norm() > 1e-3 * start.norm()  # the weights did move
    return state


def assert_same_trajectory(state: dict[str, torch.Tensor], reference: dict[str, torch.Tensor]) -> None:
    """Two results of ``trained_30_steps`` hold the same values: floating-point ones to a relative 1e-10
    (rounding only), the others (BN's step counts) bitwise."""
    assert state.keys() == reference.keys() and len([k for k in reference if k.startswith("stage")]) > 19
    for name, value in reference.items():
        if value.is_floating_point():
            assert relative_error(state[name], value) < 1e-10, name
        else:
            assert torch.equal(state[name], value), name
