"""The preconditioned LC-Block: W = P S trained directly with its gradient times M = S^T S.

For frozen S and SGD it follows the folded block's trajectory exactly; these tests pin what it is
built from (the folded block's own S and P for the same seed), the gradient it hands to the
optimizer, and the normalised step.
"""

import pytest
import torch
from helpers.cli import GRAM, tiny_cifar_args, usage_error
from helpers.networks import assert_same_trajectory, lc_resnet, trained_30_steps
from torch import nn
from torch.nn import functional as F

from lc_lightning.analysis import combined_filters, fgsm_robust, normalized_entropy, spatial_variance
from lc_lightning.cli import build_cli
from lc_lightning.models import CifarResNet
from lc_lightning.nn import (
    combined_weight,
    lc_blocks,
    lc_form,
    lc_step_scales,
    lc_weights,
    make_lc_block,
    spatial_weights,
)  # fmt: skip
from lc_lightning.nn.draws import ROWS_PER_DRAW


def block(form: str, init: str = "kaiming_uniform", seed: int = 0, **kwargs) -> nn.Conv2d:
    """An LC-Block 3 -> 8, 3 x 3, E = 1024: 8192 rows of S, drawn in more than one block of rows."""
    torch.manual_seed(seed)
    conv = make_lc_block(nn.Conv2d(3, 8, 3, padding=1, bias=False, dtype=torch.float64), 1024, init, form, **kwargs)
    combined_weight(conv)  # builds a block that holds W
    return conv


@pytest.mark.parametrize("init", ["kaiming_uniform", "kaiming_normal", "glorot_uniform", "ternary", "orthogonal"])
def test_the_same_seed_gives_the_same_filters_and_w0_in_every_form(init):
    assert 8 * 1024 > ROWS_PER_DRAW  # the draws of S are split into blocks of rows
    folded, explicit, preconditioned = block("folded", init), block("explicit", init), block("preconditioned", init)
    spatial, pointwise = lc_weights(folded)
    assert all(torch.equal(a, b) for a, b in zip(lc_weights(explicit), (spatial, pointwise), strict=True))
    rows = spatial.flatten(1)
    # W0 = P0 S in both; a sum of 8192 float64 products, rounded in another order on another CPU
    torch.testing.assert_close(combined_weight(preconditioned), combined_weight(folded), rtol=1e-12, atol=1e-15)
    preconditioner = preconditioned.parametrizations.weight[0].preconditioner
    torch.testing.assert_close(preconditioner, rows.T @ rows, rtol=1e-12, atol=1e-12)
    # another seed draws other filters
    assert not torch.equal(lc_weights(block("folded", init, seed=1))[0], spatial)


def test_a_preconditioned_block_holds_no_spatial_filters_and_the_baselines_parameters():
    torch.manual_seed(0)
    baseline, preconditioned = CifarResNet(10, 3), CifarResNet(10, 3, expansion=1024, lc_form="preconditioned")
    assert sum(p.numel() for p in preconditioned.parameters()) == sum(p.numel() for p in baseline.parameters())
    assert spatial_weights(preconditioned) == {}  # nothing to freeze: W is trained
    assert {lc_form(conv) for _, conv in lc_blocks(preconditioned)} == {"preconditioned"}
    assert len(list(lc_blocks(preconditioned))) == 19


def test_the_gradient_reaching_the_optimizer_is_the_weights_gradient_times_s_transpose_s():
    folded, preconditioned = block("folded"), block("preconditioned")
    x = torch.randn(2, 3, 6, 6, dtype=torch.float64)
    target = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    # G: the gradient of the loss with respect to the combined weight W the convolution applies
    weight = combined_weight(folded).detach().requires_grad_(True)
    F.mse_loss(F.conv2d(x, weight, padding=1), target).backward()
    F.mse_loss(preconditioned(x), target).backward()
    trained = preconditioned.parametrizations.weight.original
    spatial = lc_weights(folded)[0].flatten(1)
    expected = (weight.grad.flatten(1) @ (spatial.T @ spatial)).view_as(weight)
    torch.testing.assert_close(trained.grad, expected, rtol=1e-10, atol=1e-14)


def test_the_normalised_step_divides_by_the_mean_eigenvalue_of_s_transpose_s():
    plain, normalised = block("preconditioned"), block("preconditioned", normalized_step=True)
    m_plain = plain.parametrizations.weight[0].preconditioner
    m_normalised = normalised.parametrizations.weight[0].preconditioner
    mean_eigenvalue = m_plain.trace() / 27
    torch.testing.assert_close(m_normalised, m_plain / mean_eigenvalue)
    # for i.i.d. U[-a, a] filters the mean eigenvalue is about c_out E var(S) = 8 * 1024 * a^2 / 3
    assert mean_eigenvalue.item() == pytest.approx(8 * 1024 / 27 / 3, rel=0.02)
    folded = block("folded", normalized_step=True)
    ((pointwise, factor),) = lc_step_scales(folded)
    assert pointwise is lc_weights(folded)[1] and factor == pytest.approx(1 / mean_eigenvalue.item(), rel=1e-12)
    assert lc_step_scales(block("folded")) == [] and lc_step_scales(normalised) == []


def test_sgd_with_the_normalised_step_follows_the_same_trajectory_in_both_forms():
    """P's lr times the factor and P's weight decay divided by it (folded) is W's step with M
    divided by its mean eigenvalue (preconditioned): 20 steps of SGD with Nesterov momentum."""
    folded, preconditioned = block("folded", normalized_step=True), block("preconditioned", normalized_step=True)
    lc_weights(folded)[0].requires_grad_(False)
    ((pointwise, factor),) = lc_step_scales(folded)
    sgd = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}
    optimizers = [
        torch.optim.SGD([{"params": [pointwise], "lr": 0.05 * factor, "weight_decay": 0.01 / factor}], **sgd),
        torch.optim.SGD([preconditioned.parametrizations.weight.original], **sgd),
    ]
    generator = torch.Generator().manual_seed(2)
    for _ in range(20):
        x = torch.randn(4, 3, 6, 6, generator=generator, dtype=torch.float64)
        target = torch.randn(4, 8, 6, 6, generator=generator, dtype=torch.float64)
        for conv, optimizer in zip((folded, preconditioned), optimizers, strict=True):
            optimizer.zero_grad()
            F.mse_loss(conv(x), target).backward()
            optimizer.step()
    start = combined_weight(block("folded"))
    moved = combined_weight(folded).detach()
    assert (moved - start).norm() > 0.1 * start.norm()
    torch.testing.assert_close(combined_weight(preconditioned).detach(), moved, rtol=1e-10, atol=1e-14)


def networks() -> dict[str, nn.Module]:
    """ResNet-LC-20-16x8 in the folded and the preconditioned form, from one seed, in fp64."""
    return {form: lc_resnet(form) for form in ("folded", "preconditioned")}


def test_the_analysis_gives_a_preconditioned_network_the_folded_networks_values():
    built = networks()
    filters = {form: combined_filters(network) for form, network in built.items()}
    assert list(filters["preconditioned"]) == list(filters["folded"]) and len(filters["folded"]) == 19
    for name, weight in filters["folded"].items():
        torch.testing.assert_close(filters["preconditioned"][name], weight, rtol=1e-6, atol=1e-7)
        assert normalized_entropy(filters["preconditioned"][name]) == pytest.approx(normalized_entropy(weight), 1e-5)
    heatmaps = {form: spatial_variance(f.values()) for form, f in filters.items()}
    torch.testing.assert_close(heatmaps["preconditioned"], heatmaps["folded"])
    images = torch.rand(32, 3, 32, 32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    targets = torch.randint(0, 10, (32,), generator=torch.Generator().manual_seed(4))
    robust = {form: fgsm_robust(network.eval(), images, targets, 1 / 255) for form, network in built.items()}
    assert torch.equal(robust["preconditioned"], robust["folded"])


def test_30_steps_of_the_modules_own_recipe_take_both_forms_along_one_trajectory_in_fp64():
    """The issue's check: ResNet-LC-20-16x8 with frozen spatial filters, the module's own optimizer and
    schedule (SGD, Nesterov 0.9, weight decay 0.01, cosine per step) and loss (label smoothing), BN in
    training mode: every combined weight, BN and FC parameter (and BN statistic) of the preconditioned
    run equals the folded run's to a relative 1e-10."""
    states = {form: trained_30_steps(network, freeze_spatial=True) for form, network in networks().items()}
    assert_same_trajectory(states["preconditioned"], states["folded"])


PRECONDITIONED = ["--model.network.init_args.lc_form=preconditioned", "--model.network.init_args.width=4"]


@pytest.mark.parametrize(
    "form, args, message",
    [
        (PRECONDITIONED, ["--model.freeze_spatial=false"],
         "lc-train: error: lc_form=preconditioned needs frozen spatial filters (freeze_spatial=true): with learnable "
         "S, W = P S does not follow a fixed preconditioner; use lc_form=gram for learnable ones"),
        (PRECONDITIONED, ["--model.optimizer=torch.optim.AdamW"],
         "lc-train: error: lc_form=preconditioned is exact for SGD only, not AdamW: an adaptive optimizer scales each "
         "entry of P's gradient, which W = P S cannot follow; use lc_form=folded"),
        (PRECONDITIONED, ["--trainer.gradient_clip_val=1.0"],
         "lc-train: error: lc_form=preconditioned cannot clip gradients (gradient_clip_val=1.0): the norm of W's "
         "gradient is not that of P's, so clipping would change the run; use lc_form=folded or no clipping"),
        (GRAM, ["--model.optimizer=torch.optim.AdamW"],
         "lc-train: error: lc_form=gram is exact for SGD only, not AdamW: an adaptive optimizer scales each entry of "
         "P's gradient, which W = P S cannot follow; use lc_form=folded"),
        (GRAM, ["--model.freeze_spatial=true"],
         "lc-train: error: lc_form=gram trains the spatial filters (freeze_spatial=false); for frozen ones use "
         "lc_form=preconditioned"),
        (GRAM, ["--trainer.gradient_clip_val=0.5"],
         "lc-train: error: lc_form=gram cannot clip gradients (gradient_clip_val=0.5): the norm of W's gradient is "
         "not that of P's, so clipping would change the run; use lc_form=folded or no clipping"),
    ],
)  # fmt: skip
def test_a_run_where_the_reduction_is_not_exact_is_refused_in_one_line(
    form, args, message, tiny_cifar10, tmp_path, monkeypatch, capsys
):
    """Preconditioned (frozen filters) and gram (learned ones) blocks leave the folded trajectory with
    learnable or frozen filters, another optimizer or clipping: refused before anything is trained."""
    monkeypatch.chdir(tmp_path)
    err = usage_error(capsys, "fit", *tiny_cifar_args(tiny_cifar10[0], *form, *args))
    assert err.strip().splitlines()[-1] == message
    assert not (tmp_path / "logs").exists() or not any((tmp_path / "logs").rglob("*.ckpt"))


def test_the_folded_normalised_step_reaches_the_optimizer_as_ps_own_group(tiny_cifar10, tmp_path, monkeypatch):
    """P of every normalised-step LC-Block is a group of its own whose lr is the run's times d / ||S||^2 and
    whose weight decay is divided by it; every other trainable parameter keeps the recipe's."""
    monkeypatch.chdir(tmp_path)
    args = ["--model.network.init_args.width=4", "--model.network.init_args.normalized_lc_step=true"]
    cli = build_cli(["fit", *tiny_cifar_args(tiny_cifar10[0], *args, "--trainer.fast_dev_run=true")])
    groups = cli.trainer.optimizers[0].param_groups
    blocks = [conv for _, conv in lc_blocks(cli.model.network)]
    assert len(blocks) == 7 and len(groups) == 1 + len(blocks)  # ResNet-LC-8: 7 LC-Blocks
    assert groups[0]["initial_lr"] == pytest.approx(0.01) and groups[0]["weight_decay"] == pytest.approx(0.01)
    for conv, group in zip(blocks, groups[1:], strict=True):
        spatial, pointwise = lc_weights(conv)
        assert group["params"] == [pointwise]
        scale = spatial[0].numel() / spatial.double().square().sum().item()  # 1 / mean eigenvalue of S^T S
        assert group["initial_lr"] == pytest.approx(0.01 * scale)
        assert group["weight_decay"] == pytest.approx(0.01 / scale)
    optimized = {id(p) for group in groups for p in group["params"]}
    assert optimized == {id(p) for p in cli.model.parameters() if p.requires_grad}
