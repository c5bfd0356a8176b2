import itertools

import pytest
import torch
from helpers.networks import outputs_and_grads, relative_error, replace_relus
from torch import nn

from lc_lightning.models import CifarResNet
from lc_lightning.nn import (
    combined_weight,
    convert_to_lc,
    lc_blocks,
    lc_form,
    lc_weights,
    make_lc_block,
    set_lc_form,
    spatial_convs,
    spatial_weights,
)  # fmt: skip


def lc_parameters(conv: nn.Conv2d) -> list[nn.Parameter]:
    """S, P and, if any, the bias of a folded or explicit LC-Block."""
    bias = conv.parametrizations.weight[0].bias
    return [*lc_weights(conv), *([] if bias is None else [bias])]


@pytest.mark.parametrize(
    "kernel_size, stride, expansion, bias", list(itertools.product((1, 3, 5, 7), (1, 2), (1, 4, 32), (False, True)))
)
def test_folded_equals_explicit(kernel_size, stride, expansion, bias):
    torch.manual_seed(0)
    block = make_lc_block(nn.Conv2d(6, 10, kernel_size, stride, kernel_size // 2, bias=bias), expansion)
    x = torch.randn(3, 6, 13, 13)
    folded_out, *folded_grads = outputs_and_grads(block, x, lc_parameters(block))
    set_lc_form(block, "explicit")
    explicit_out, *explicit_grads = outputs_and_grads(block, x, lc_parameters(block))
    side = (13 + 2 * (kernel_size // 2) - kernel_size) // stride + 1
    assert folded_out.shape == explicit_out.shape == (3, 10, side, side)
    assert relative_error(folded_out, explicit_out) < 1e-5
    assert len(folded_grads) == 2 + bias
    for folded_grad, explicit_grad in zip(folded_grads, explicit_grads, strict=True):
        assert relative_error(folded_grad, explicit_grad) < 1e-5


def whole_network_outputs_and_grads(model: nn.Module, x: torch.Tensor, form: str):
    blocks = [conv for _, conv in lc_blocks(model)]
    assert len(blocks) == 19
    weights = [w for block in blocks for w in lc_weights(block)]
    return outputs_and_grads(set_lc_form(model, form), x, weights)


@pytest.mark.parametrize(
    "dtype, tolerance",
    # fp64: the two paths compute the same function, so they agree to rounding.
    [(torch.float64, 1e-12), (torch.float32, 1e-5)],
)
def test_whole_resnet_lc_folded_equals_explicit(dtype, tolerance):
    torch.manual_seed(0)
    model = CifarResNet(10, 3, depth=20, width=16, expansion=8).eval().to(dtype)  # eval: fixed BN statistics
    if dtype == torch.float32:
        # In fp32 the two paths round differently (~1e-7); a pre-activation that close to
        # zero flips its ReLU in one path and not the other, changing that gradient by far
        # more than rounding (seen: one flip at 4e-8, gradients 1e-3 apart). A smooth
        # activation keeps the comparison about the LC-Blocks, not the kinks.
        replace_relus(model)
    x = torch.randn(4, 3, 32, 32, dtype=dtype)
    folded_out, *folded_grads = whole_network_outputs_and_grads(model, x, "folded")
    explicit_out, *explicit_grads = whole_network_outputs_and_grads(model, x, "explicit")
    assert relative_error(folded_out, explicit_out) < tolerance
    for folded_grad, explicit_grad in zip(folded_grads, explicit_grads, strict=True):
        assert relative_error(folded_grad, explicit_grad) < tolerance


def test_combined_weight_is_pointwise_times_spatial():
    torch.manual_seed(0)
    block = make_lc_block(nn.Conv2d(3, 4, 3), expansion=2)
    spatial, pointwise = lc_weights(block)
    assert spatial.shape == (8, 3, 3, 3) and pointwise.shape == (4, 8)
    combined = combined_weight(block)
    assert combined.shape == (4, 3, 3, 3)
    # output channel o, input channel c: sum over the 8 spatial filters m of P[o, m] * S[m, c]
    torch.testing.assert_close(combined, torch.einsum("om,mcij->ocij", pointwise, spatial))
    torch.testing.assert_close(block.weight, combined)  # what the convolution's own forward reads


def test_combined_weight_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    block = make_lc_block(nn.Conv2d(16, 16, 3, padding=1), expansion=128)
    exact = combined_weight(block).double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        combined = combined_weight(block)
        out = block(torch.randn(2, 16, 8, 8))
    assert combined.dtype == torch.float32
    assert relative_error(combined.double(), exact) < 1e-6
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("expansion", [0, -1, 2.5, True])
def test_invalid_expansion_is_rejected(expansion):
    with pytest.raises(ValueError, match="expansion must be an integer >= 1"):
        make_lc_block(nn.Conv2d(3, 4, 3), expansion)
    with pytest.raises(ValueError, match="expansion must be an integer >= 1"):
        convert_to_lc(nn.Conv2d(3, 4, 3), expansion)


def test_unknown_init_and_form_list_the_choices():
    with pytest.raises(ValueError, match="unknown spatial init 'he'.*kaiming_uniform.*ternary"):
        make_lc_block(nn.Conv2d(3, 4, 3), 2, init="he")
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="choose one of"):
        convert_to_lc(model, 2, init="gaussian")
    with pytest.raises(ValueError, match="unknown lc_form 'fused'; choose one of: folded, explicit, preconditioned"):
        convert_to_lc(model, 2, form="fused")
    assert lc_form(model[0]) is None  # nothing was converted before the error


class Mixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.strided = nn.Conv2d(3, 8, 5, stride=2, padding=1, dilation=2, bias=True, padding_mode="reflect")
        self.pointwise = nn.Conv2d(8, 8, 1)
        self.depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.grouped = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.nested = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 6, (3, 1), padding=(1, 0), bias=False))

    def forward(self, x):
        return self.nested(self.grouped(self.depthwise(self.pointwise(self.strided(x)))))


def test_convert_to_lc_replaces_only_dense_spatial_convs_and_keeps_their_hyper_parameters():
    torch.manual_seed(0)
    model = Mixed()
    x = torch.randn(2, 3, 20, 20)
    shape_before = model(x).shape
    bias = model.strided.bias.detach().clone()
    converted = convert_to_lc(model, expansion=3, init="orthogonal")
    assert converted is model
    assert [name for name, _ in lc_blocks(model)] == ["strided", "nested.1"]
    for name in ("pointwise", "depthwise", "grouped"):
        assert type(getattr(model, name)) is nn.Conv2d
    block = model.strided
    assert isinstance(block, nn.Conv2d) and lc_form(block) == "folded"
    assert (block.stride, block.padding, block.dilation, block.padding_mode) == ((2, 2), (1, 1), (2, 2), "reflect")
    spatial, pointwise = lc_weights(block)
    assert spatial.shape == (24, 3, 5, 5) and pointwise.shape == (8, 24)
    # the bias is applied after the combination, with its values kept
    assert block.bias is None and torch.equal(block.parametrizations.weight[0].bias, bias)
    assert lc_weights(model.nested[1])[0].shape == (18, 8, 3, 1)
    assert model(x).shape == shape_before
    # Converting again leaves the LC-Blocks alone.
    convert_to_lc(model, expansion=5)
    assert lc_weights(model.strided)[0] is spatial


def test_conv_subclasses_with_their_own_forward_convert_and_keep_it():
    class ReflectSameConv(nn.Conv2d):
        """Pads by reflection before a convolution without padding: a forward of its own."""

        def forward(self, x):
            return self._conv_forward(nn.functional.pad(x, [1, 1, 1, 1], mode="reflect"), self.weight, self.bias)

    torch.manual_seed(0)
    block = convert_to_lc(nn.Sequential(ReflectSameConv(3, 4, 3, bias=True)), 2)[0]
    assert isinstance(block, ReflectSameConv) and lc_form(block) == "folded"
    x = torch.randn(2, 3, 7, 7)
    reference = nn.functional.conv2d(nn.functional.pad(x, [1] * 4, mode="reflect"), combined_weight(block))
    torch.testing.assert_close(block(x), reference + block.parametrizations.weight[0].bias.view(1, -1, 1, 1))


def test_spatial_convs_and_weights_find_plain_and_lc_spatial_but_not_pointwise():
    model = convert_to_lc(Mixed(), 2)
    assert [name for name, _ in spatial_convs(model)] == ["strided", "depthwise", "grouped", "nested.1"]
    assert list(spatial_weights(model)) == [
        "strided.parametrizations.weight.original0", "depthwise.weight", "grouped.weight",
        "nested.1.parametrizations.weight.original0",
    ]  # fmt: skip
    assert spatial_weights(model)["strided.parametrizations.weight.original0"] is lc_weights(model.strided)[0]
