import copy
import math
from functools import partial

import pytest
import timm
import torch
from helpers.networks import outputs_and_grads, parameter_count, relative_error, replace_relus, snapshot
from helpers.runs import assert_same_state
from lightning import Trainer
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from lc_lightning.callbacks import FreezeSpatialConvs
from lc_lightning.errors import InvalidArgumentError
from lc_lightning.models import TimmNet
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import (
    combined_weight,
    convert_to_lc,
    lc_blocks,
    lc_weights,
    set_lc_form,
    spatial_convs,
    spatial_weights,
)
from lc_lightning.optim import PaperSGD

# The paper's Figure 1 trains nine timm models: resnet18, resnet34, resnet50, resnet101, resnet50d,
# wide_resnet50_2, resnext50_32x4d, mobilenetv2_100 and mobilenetv3_large_100. Three of them hold every
# structure the conversion to LC-Blocks and the freezing meet in the nine:
# - resnet50d: a ResNet whose deep stem nests its dense 3x3 convs in a Sequential, whose downsampling
#   is average pooling then a 1x1 conv, with bottleneck blocks and no grouped convs;
# - resnext50_32x4d: a ResNet whose only dense spatial conv is the 7x7 stem, a direct child of the
#   model; every 3x3 conv of its bottlenecks is grouped (32 groups, not depthwise);
# - mobilenetv3_large_100: timm's other family (blocks from the EfficientNet builder), depthwise convs,
#   squeeze-and-excite 1x1 convs with biases, one dense spatial conv (the stem).
# resnet18/34 (basic blocks: resnet18d below), resnet50/101 and wide_resnet50_2 (the same bottlenecks,
# other depths and widths) and mobilenetv2_100 (the EfficientNet builder, built below with two inits)
# add no other structure (lc_lightning.nn's own tests cover biases, padding modes and dilation).
FIGURE_1_MODELS = ["resnet50d", "resnext50_32x4d", "mobilenetv3_large_100"]
GROUPED_MODELS = {"resnext50_32x4d", "mobilenetv3_large_100"}  # grouped or depthwise convs


def is_dense_spatial(module: nn.Module) -> bool:
    return isinstance(module, nn.Conv2d) and max(module.kernel_size) > 1 and module.groups == 1


def test_resnet18d_baseline_has_timms_parameter_count():
    # timm publishes ResNet-18d (ImageNet, 1000 classes) as 11.7 M parameters: 11,708,744.
    assert parameter_count(TimmNet(1000, 3)) == parameter_count(timm.create_model("resnet18d")) == 11_708_744


def test_classes_and_channels_are_honoured():
    model = TimmNet(10, 1)
    assert model.model.conv1[0].in_channels == 1 and model.model.get_classifier().out_features == 10
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 10)


def test_resnet18d_lc_has_e_times_the_spatial_parameters_plus_the_pointwise_ones():
    expansion = 8
    baseline = TimmNet(1000, 3)
    lc = TimmNet(1000, 3, expansion=expansion)
    spatial = [m for m in baseline.modules() if is_dense_spatial(m)]
    assert len(spatial) == 19  # 3 stem convs + 8 basic blocks x 2
    assert len(list(lc_blocks(lc))) == len(spatial)
    spatial_params = sum(conv.weight.numel() for conv in spatial)
    pointwise_params = sum(conv.out_channels * expansion * conv.out_channels for conv in spatial)
    assert parameter_count(lc) == (
        parameter_count(baseline) - spatial_params + expansion * spatial_params + pointwise_params
    )


def resnet18d_lc(dtype: torch.dtype, expansion: int = 8) -> TimmNet:
    torch.manual_seed(0)
    model = TimmNet(10, 3, expansion=expansion).train()  # train mode: BN normalises with batch statistics
    # timm zero-initialises the last BN of every residual branch, so at init those branches output 0
    # and their LC-Blocks get no gradient. Random BN affine parameters make every block take part.
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            nn.init.uniform_(bn.weight, 0.5, 1.5)
            nn.init.uniform_(bn.bias, -0.5, 0.5)
    return model.to(dtype)


def resnet18d_outputs_and_grads(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """[output, grad of every LC spatial and pointwise weight..., grad of the input]."""
    x = x.clone().requires_grad_(True)
    weights = [w for _, block in lc_blocks(model) for w in lc_weights(block)]
    assert len(weights) == 38
    return outputs_and_grads(model, x, [*weights, x])


def folded_and_explicit(model: nn.Module, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    explicit = set_lc_form(copy.deepcopy(model), "explicit")
    return resnet18d_outputs_and_grads(set_lc_form(model, "folded"), x), resnet18d_outputs_and_grads(explicit, x)


def test_resnet18d_lc_folded_equals_explicit_in_fp64():
    # The two paths compute the same function, so in fp64 they agree to rounding (seen: 4e-14). E = 2:
    # folding costs ~c_out^2 E k^2 c_in per block, which in fp64 at E = 8 took most of 10 s.
    model = resnet18d_lc(torch.float64, expansion=2)
    folded, explicit = folded_and_explicit(model, torch.randn(2, 3, 64, 64, dtype=torch.float64))
    for a, b in zip(folded, explicit, strict=True):
        assert relative_error(a, b) < 1e-12


def replace_kinks(module: nn.Module) -> None:
    """ReLU -> GELU and max pooling -> average pooling of the same geometry (smooth everywhere)."""
    replace_relus(module)
    for name, child in module.named_modules():
        if isinstance(child, nn.MaxPool2d):
            parent = module.get_submodule(name.rpartition(".")[0])
            pool = nn.AvgPool2d(child.kernel_size, child.stride, child.padding)
            setattr(parent, name.rpartition(".")[2], pool)


def test_resnet18d_lc_folded_is_as_accurate_as_explicit_in_fp32():
    # With BN in training mode fp32 cannot hold the whole network to 1e-5: even the explicit path
    # lies 1.3-1.8e-5 from the fp64 result (19 LC-Blocks, 6 seeds) and folded vs explicit differ
    # by ~1.5-2e-5; batch statistics amplify rounding in both paths alike. So both fp32 paths are
    # measured against fp64: folding must cost no accuracy (seen: error ratio 0.8-1.1). ReLUs
    # become GELUs: a pre-activation within rounding of 0 flips its ReLU in one fp32 path only and
    # moves a gradient by ~1e-3 (seen in 2 of 8 seeds); the smooth activation keeps the comparison
    # about the LC-Blocks. (No max-pool flip was seen in train mode in 16 runs.)
    model = resnet18d_lc(torch.float32)
    replace_relus(model)
    x = torch.randn(2, 3, 64, 64)
    reference = resnet18d_outputs_and_grads(set_lc_form(copy.deepcopy(model).double(), "explicit"), x.double())
    folded, explicit = folded_and_explicit(model, x)
    folded_errors = [relative_error(a, ref) for a, ref in zip(folded, reference, strict=True)]
    explicit_errors = [relative_error(b, ref) for b, ref in zip(explicit, reference, strict=True)]
    assert max(folded_errors) < 3e-5 and max(explicit_errors) < 3e-5  # seen: 1.4e-5 and 1.3e-5
    assert max(folded_errors) < 1.5 * max(explicit_errors)


def test_resnet18d_lc_folded_equals_explicit_in_fp32_with_bn_in_eval_mode():
    # The design's fp32 bound for the whole network: with BN as the fixed per-channel affine map it
    # is in evaluation mode, there are no batch statistics to amplify rounding, and folded and
    # explicit agree to ~1.5e-6 in outputs and gradients. Every kink is smoothed for the reason
    # above: the stem's max pool, like a ReLU, switches on a near-tie that rounding decides
    # differently in the two paths (seen: one gradient off by 3.5e-3 with the max pool kept).
    model = resnet18d_lc(torch.float32).eval()
    replace_kinks(model)
    for bn in model.modules():
        if isinstance(bn, nn.BatchNorm2d):
            nn.init.uniform_(bn.running_mean, -0.2, 0.2)
            nn.init.uniform_(bn.running_var, 0.5, 2.0)
    folded, explicit = folded_and_explicit(model, torch.randn(2, 3, 64, 64))
    for a, b in zip(folded, explicit, strict=True):
        assert relative_error(a, b) < 1e-5


def test_every_lc_block_of_resnet18d_folded_equals_explicit_in_fp32():
    # Block by block, on the inputs the network feeds it, fp32 meets the design's 1e-5 (seen: 1.5e-6).
    model = resnet18d_lc(torch.float32)
    inputs = {}

    def capture(block: nn.Conv2d, args: tuple[torch.Tensor]) -> None:
        inputs[block] = args[0].detach().clone()

    hooks = [block.register_forward_pre_hook(capture) for _, block in lc_blocks(model)]
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    assert len(inputs) == 19 and {block.stride for block in inputs} == {(1, 1), (2, 2)}
    for block, block_input in inputs.items():
        results = []
        for form in ("folded", "explicit"):
            set_lc_form(block, form)
            x = block_input.clone().requires_grad_(True)
            results.append(outputs_and_grads(block, x, [*lc_weights(block), x]))
        for a, b in zip(*results, strict=True):
            assert relative_error(a, b) < 1e-5


@pytest.mark.parametrize("name", FIGURE_1_MODELS)
def test_figure_1_model_with_lc_blocks_keeps_grouped_convs_plain_and_takes_32x32(name):
    torch.manual_seed(0)
    baseline = TimmNet(10, 3, name=name)
    lc = TimmNet(10, 3, name=name, expansion=2)
    dense = [m for m in baseline.modules() if is_dense_spatial(m)]
    grouped = [m for m in baseline.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    blocks = [conv for _, conv in lc_blocks(lc)]
    assert len(blocks) == len(dense) > 0
    # Every dense spatial conv is an LC-Block now.
    assert [m for m in lc.modules() if is_dense_spatial(m)] == blocks
    lc_grouped = [m for m in lc.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    assert bool(grouped) == (name in GROUPED_MODELS)
    assert [type(m) for m in lc_grouped] == [nn.Conv2d] * len(grouped)
    assert lc(torch.rand(4, 3, 32, 32)).shape == (4, 10)


@pytest.mark.parametrize("expansion, init", [(None, "ternary"), (2, "binary")])
def test_every_spatial_filter_grouped_and_depthwise_included_comes_from_the_named_init(expansion, init):
    torch.manual_seed(0)
    model = TimmNet(10, 3, name="mobilenetv2_100", expansion=expansion, init=init)
    weights = list(spatial_weights(model).values())
    grouped = [conv.groups > 1 for _, conv in spatial_convs(model)]
    assert any(grouped) and not all(grouped) and len(weights) == len(grouped)
    for weight in weights:
        # binary: +-a/sqrt(3); ternary: {-c, 0, c} with c = a/sqrt(2); a = 1/sqrt(fan_in).
        bound = 1 / math.sqrt(weight[0].numel())
        magnitude = bound / math.sqrt(3 if init == "binary" else 2)
        allowed = torch.tensor([magnitude] if init == "binary" else [0.0, magnitude])
        magnitudes = weight.detach().abs().unique()
        assert torch.isclose(magnitudes[:, None], allowed[None, :]).any(dim=1).all()


def test_a_seed_gives_the_lc_network_of_the_baseline_converted():
    # Runs are reproduced from their config and seed: every spatial filter, dense ones included, is
    # drawn as in the baseline before the LC-Blocks draw their seeds, so every recorded seed keeps its
    # network (mobilenetv3_small_050 also has depthwise convs, which stay plain).
    torch.manual_seed(0)
    lc = TimmNet(10, 3, "mobilenetv3_small_050", expansion=2, init="ternary", lc_form="gram", normalized_lc_step=True)
    after_lc = torch.get_rng_state()
    torch.manual_seed(0)
    expected = TimmNet(10, 3, "mobilenetv3_small_050", init="ternary")
    convert_to_lc(expected.model, 2, "ternary", "gram", normalized_step=True)
    assert repr(lc) == repr(expected)  # the blocks' expansion, form and normalized step
    assert_same_state(lc.state_dict(), expected.state_dict())
    assert torch.equal(after_lc, torch.get_rng_state())


@pytest.mark.parametrize("name", FIGURE_1_MODELS)
def test_figure_1_model_trains_with_its_spatial_convs_frozen(name):
    torch.manual_seed(0)
    network = partial(TimmNet, name=name)
    module = ImageClassifier(
        network, num_classes=10, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, optimizer=partial(PaperSGD, lr=0.1)
    )
    frozen = set(FreezeSpatialConvs.frozen_weights(module))
    spatial = {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1}
    grouped = {f"{n}.weight" for n, m in module.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert frozen == spatial and len(frozen) > 0
    assert bool(grouped) == (name in GROUPED_MODELS) and grouped <= frozen
    images = torch.rand(8, 3, 32, 32)
    labels = torch.randint(0, 10, (8,))
    before = snapshot(module)
    trainer = Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, callbacks=[FreezeSpatialConvs()],
    )  # fmt: skip
    trainer.fit(module, DataLoader(TensorDataset(images, labels), batch_size=4))
    assert trainer.global_step == 2
    after = snapshot(module)
    assert frozen == {n for n, p in module.named_parameters() if not p.requires_grad}
    for n in before:
        if n in frozen:
            assert torch.equal(before[n], after[n]), n
        else:  # 1x1 convs, BN and the classifier, zero-initialised BN weights and biases included
            assert not torch.equal(before[n], after[n]), f"{n} did not move"


@pytest.mark.parametrize("name", ["resnet18e", "resnet_18d"])
def test_unknown_model_name_suggests_close_matches(name):
    with pytest.raises(InvalidArgumentError, match=f"unknown timm model '{name}'.*did you mean.*resnet18d"):
        TimmNet(10, 3, name=name)


def test_conv2d_same_converts_keeps_its_own_padding_and_folded_equals_explicit():
    # TensorFlow "same" padding of the tf_* models: timm's Conv2dSame pads in its own forward, by the
    # input's size (the strided 3 x 3 stem on 32 x 32: 0 before, 1 after, unlike any padding argument).
    torch.manual_seed(0)
    model = TimmNet(10, 3, name="tf_mobilenetv3_small_minimal_100", expansion=2).double().eval()
    blocks = [conv for _, conv in lc_blocks(model)]
    assert blocks and all(isinstance(conv, timm.layers.Conv2dSame) for conv in blocks)
    # the same weights in the plain model's Conv2dSame layers
    reference = TimmNet(10, 3, name="tf_mobilenetv3_small_minimal_100").double().eval()
    state = {key: value for key, value in model.state_dict().items() if ".parametrizations." not in key}
    reference.load_state_dict(state | {f"{name}.weight": combined_weight(conv) for name, conv in lc_blocks(model)})
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(model(x), reference(x), rtol=1e-12, atol=1e-12)
    folded = outputs_and_grads(model, x)
    explicit = outputs_and_grads(set_lc_form(copy.deepcopy(model), "explicit"), x)
    for a, b in zip(folded, explicit, strict=True):
        assert relative_error(a, b) < 1e-12


def test_std_conv2d_converts_and_standardises_the_combined_weight():
    # BiT's StdConv2d standardises its weight in its own forward: as an LC-Block it standardises
    # W = P S. Not linear in its weight, it has no explicit form (two convolutions cannot equal it).
    torch.manual_seed(0)
    model = TimmNet(10, 3, name="resnetv2_50x1_bit", expansion=2).double()
    blocks = [conv for _, conv in lc_blocks(model)]
    assert blocks and all(isinstance(conv, timm.layers.StdConv2d) for conv in blocks)
    block, x = blocks[1], torch.randn(2, blocks[1].in_channels, 8, 8, dtype=torch.float64)
    spatial, pointwise = lc_weights(block)
    # the standardised combined weight, computed by hand: each filter minus its mean, over its std
    combined = (pointwise @ spatial.flatten(1)).view_as(combined_weight(block))
    mean = combined.mean(dim=(1, 2, 3), keepdim=True)
    std = (combined.var(dim=(1, 2, 3), unbiased=False, keepdim=True) + block.eps).sqrt()
    expected = nn.functional.conv2d(x, (combined - mean) / std, None, block.stride, block.padding)
    torch.testing.assert_close(block(x), expected, rtol=1e-10, atol=1e-12)
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).shape == (2, 10)
    with pytest.raises(InvalidArgumentError, match="StdConv2d is not linear in its weight.*use lc_form=folded"):
        TimmNet(10, 3, name="resnetv2_50x1_bit", expansion=2, lc_form="explicit")


@pytest.mark.parametrize(
    "kwargs, message",
    [({"expansion": 0}, "expansion must be an integer >= 1"), ({"init": "he"}, "unknown spatial init 'he'")],
)
def test_invalid_arguments_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message):
        TimmNet(10, 3, **kwargs)


@pytest.mark.parametrize("name", ["tf_mobilenetv3_small_minimal_100", "resnetv2_50x1_bit"])
def test_lc_blocks_of_conv_subclasses_train_with_their_spatial_filters_bitwise_frozen(name):
    # Conv2dSame and StdConv2d as LC-Blocks: S stays as drawn while P, BN and the classifier move.
    torch.manual_seed(0)
    network = partial(TimmNet, name=name, expansion=2)
    module = ImageClassifier(
        network, num_classes=10, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, freeze_spatial=True,
        optimizer=partial(PaperSGD, lr=0.1),
    )  # fmt: skip
    blocks = [conv for _, conv in lc_blocks(module)]
    assert blocks and all(type(conv).__name__ in ("ParametrizedConv2dSame", "ParametrizedStdConv2d") for conv in blocks)
    before = snapshot(module)
    trainer = Trainer(
        accelerator="cpu", max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
    )  # fmt: skip
    data = TensorDataset(torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,)))
    trainer.fit(module, DataLoader(data, batch_size=4))
    after = snapshot(module)
    frozen = set(FreezeSpatialConvs.frozen_weights(module))
    assert {name for name in frozen if name.endswith("parametrizations.weight.original0")}
    for key in before:
        assert torch.equal(before[key], after[key]) == (key in frozen), key
