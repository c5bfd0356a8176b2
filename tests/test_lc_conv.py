import itertools

import pytest
import torch
from torch import nn

from lc_lightning.models import CifarResNet
from lc_lightning.nn import LCConv2d, convert_to_lc, set_folded, spatial_convs


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm()).item()


def outputs_and_grads(module: nn.Module, x: torch.Tensor, weights: list[nn.Parameter]):
    module.zero_grad()
    out = module(x)
    # A fixed random projection makes the loss depend on every output element differently.
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(1), dtype=out.dtype)
    (out * proj).sum().backward()
    return out.detach().clone(), [w.grad.clone() for w in weights]


@pytest.mark.parametrize(
    "kernel_size, stride, expansion, bias", list(itertools.product((1, 3, 5, 7), (1, 2), (1, 4, 32), (False, True)))
)
def test_folded_equals_explicit(kernel_size, stride, expansion, bias):
    torch.manual_seed(0)
    block = LCConv2d(6, 10, kernel_size, stride, kernel_size // 2, bias=bias, expansion=expansion)
    x = torch.randn(3, 6, 13, 13)
    weights = [block.spatial.weight, block.pointwise.weight] + ([block.pointwise.bias] if bias else [])
    folded_out, folded_grads = outputs_and_grads(block, x, weights)
    block.folded = False
    explicit_out, explicit_grads = outputs_and_grads(block, x, weights)
    side = (13 + 2 * (kernel_size // 2) - kernel_size) // stride + 1
    assert folded_out.shape == explicit_out.shape == (3, 10, side, side)
    assert rel_err(folded_out, explicit_out) < 1e-5
    for folded_grad, explicit_grad in zip(folded_grads, explicit_grads, strict=True):
        assert rel_err(folded_grad, explicit_grad) < 1e-5


def whole_network_outputs_and_grads(model: nn.Module, x: torch.Tensor, folded: bool):
    lc_blocks = [m for m in model.modules() if isinstance(m, LCConv2d)]
    assert len(lc_blocks) == 19
    weights = [w for block in lc_blocks for w in (block.spatial.weight, block.pointwise.weight)]
    return outputs_and_grads(set_folded(model, folded), x, weights)


def replace_relus(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.ReLU):
            setattr(module, name, nn.GELU())
        replace_relus(child)


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
    folded_out, folded_grads = whole_network_outputs_and_grads(model, x, folded=True)
    explicit_out, explicit_grads = whole_network_outputs_and_grads(model, x, folded=False)
    assert rel_err(folded_out, explicit_out) < tolerance
    for folded_grad, explicit_grad in zip(folded_grads, explicit_grads, strict=True):
        assert rel_err(folded_grad, explicit_grad) < tolerance


def test_combined_weight_is_pointwise_times_spatial():
    torch.manual_seed(0)
    block = LCConv2d(3, 4, 3, expansion=2)
    combined = block.combined_weight()
    assert combined.shape == (4, 3, 3, 3)
    # output channel o, input channel c: sum over the 8 spatial filters m of P[o, m] * S[m, c]
    expected = torch.einsum("om,mcij->ocij", block.pointwise.weight[:, :, 0, 0], block.spatial.weight)
    torch.testing.assert_close(combined, expected)


def test_combined_weight_stays_fp32_under_bf16_autocast():
    torch.manual_seed(0)
    block = LCConv2d(16, 16, 3, padding=1, expansion=128)
    exact = block.combined_weight().double()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        combined = block.combined_weight()
        out = block(torch.randn(2, 16, 8, 8))
    assert combined.dtype == torch.float32
    assert rel_err(combined.double(), exact) < 1e-6
    assert out.dtype == torch.bfloat16


@pytest.mark.parametrize("expansion", [0, -1, 2.5, True])
def test_invalid_expansion_is_rejected(expansion):
    with pytest.raises(ValueError, match="expansion must be an integer >= 1"):
        LCConv2d(3, 4, 3, expansion=expansion)
    with pytest.raises(ValueError, match="expansion must be an integer >= 1"):
        convert_to_lc(nn.Conv2d(3, 4, 3), expansion)


def test_unknown_init_lists_the_choices():
    with pytest.raises(ValueError, match="unknown spatial init 'he'.*kaiming_uniform.*ternary"):
        LCConv2d(3, 4, 3, init="he")
    model = nn.Sequential(nn.Conv2d(3, 4, 3))
    with pytest.raises(ValueError, match="choose one of"):
        convert_to_lc(model, 2, init="gaussian")
    assert type(model[0]) is nn.Conv2d  # nothing was converted before the error


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
    converted = convert_to_lc(model, expansion=3, init="orthogonal")
    assert converted is model
    assert isinstance(model.strided, LCConv2d) and isinstance(model.nested[1], LCConv2d)
    for name in ("pointwise", "depthwise", "grouped"):
        assert type(getattr(model, name)) is nn.Conv2d
    block = model.strided
    assert (block.spatial.stride, block.spatial.padding, block.spatial.dilation) == ((2, 2), (1, 1), (2, 2))
    assert block.spatial.padding_mode == "reflect" and block.spatial.bias is None
    assert block.pointwise.bias is not None and model.nested[1].pointwise.bias is None
    assert block.spatial.weight.shape == (24, 3, 5, 5) and block.pointwise.weight.shape == (8, 24, 1, 1)
    assert model.nested[1].spatial.kernel_size == (3, 1)
    assert model(x).shape == shape_before
    # Converting again leaves the LC-Blocks alone.
    assert convert_to_lc(model, expansion=5).strided is block


def test_convert_a_bare_conv_returns_an_lc_block():
    block = convert_to_lc(nn.Conv2d(3, 4, 3, padding=1), 2)
    assert isinstance(block, LCConv2d) and block.expansion == 2


def test_convert_refuses_conv_subclasses_with_their_own_forward():
    class SameConv(nn.Conv2d):
        pass

    with pytest.raises(TypeError, match="SameConv"):
        convert_to_lc(nn.Sequential(SameConv(3, 4, 3)), 2)


def test_spatial_convs_finds_plain_and_lc_spatial_but_not_pointwise():
    model = convert_to_lc(Mixed(), 2)
    names = [name for name, _ in spatial_convs(model)]
    assert names == ["strided.spatial", "depthwise", "grouped", "nested.1.spatial"]
