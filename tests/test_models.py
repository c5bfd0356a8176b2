import pytest
import torch
from helpers.networks import parameter_count
from helpers.runs import assert_same_state

from lc_lightning.models import CifarResNet
from lc_lightning.nn import LCOptions, convert_to_lc, lc_blocks, spatial_convs, spatial_weights


def test_resnet20_baseline_has_the_option_b_parameter_count():
    # The standard CIFAR ResNet-20 (He et al.) has 269,722 parameters with option-A (parameter
    # free) shortcuts. Option B adds two 1x1 shortcut convs, 16*32 + 32*64 = 2,560 weights, and
    # their BNs, 2*32 + 2*64 = 192: 272,474.
    assert parameter_count(CifarResNet(10, 3)) == 272_474


@pytest.mark.parametrize("expansion", [1, 4, 32])
def test_lc_has_e_times_the_spatial_parameters_plus_the_pointwise_ones(expansion):
    baseline = CifarResNet(10, 3, width=16, depth=20)
    lc = CifarResNet(10, 3, width=16, depth=20, expansion=expansion)
    spatial = [conv for _, conv in spatial_convs(baseline)]
    assert len(spatial) == 19
    spatial_params = sum(conv.weight.numel() for conv in spatial)
    pointwise_params = sum(conv.out_channels * expansion * conv.out_channels for conv in spatial)
    assert parameter_count(lc) == (
        parameter_count(baseline) - spatial_params + expansion * spatial_params + pointwise_params
    )
    assert len(list(lc_blocks(lc))) == 19


@pytest.mark.parametrize("depth, spatial_layers", [(8, 7), (20, 19), (32, 31), (56, 55)])
def test_depth_counts_spatial_convs_plus_the_classifier(depth, spatial_layers):
    assert len(list(spatial_convs(CifarResNet(10, 3, depth=depth)))) == spatial_layers


@pytest.mark.parametrize("kernel_size", [3, 5, 7])
def test_any_channels_classes_width_and_kernel_size(kernel_size):
    model = CifarResNet(100, 1, depth=14, width=8, kernel_size=kernel_size, expansion=2)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 100)
    assert all(conv.kernel_size == (kernel_size, kernel_size) for _, conv in spatial_convs(model))
    widths = [conv.out_channels for _, conv in spatial_convs(model)]
    assert widths[0] == 8 and max(widths) == 32
    filters = [weight.shape[0] for weight in spatial_weights(model).values()]
    assert filters[0] == 8 * 2 and max(filters) == 32 * 2  # S holds E * c_out filters
    assert model.fc.in_features == 32


def test_stage_strides_downsample_32_to_8():
    model = CifarResNet(10, 3)
    features = model.stages(model.stem(torch.rand(1, 3, 32, 32)))
    assert features.shape == (1, 64, 8, 8)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"depth": 21}, "depth must be 6n \\+ 2"),
        ({"depth": 2}, "depth must be 6n \\+ 2"),
        ({"kernel_size": 4}, "kernel_size must be odd"),
        ({"expansion": 0}, "expansion must be an integer >= 1"),
        ({"init": "xavier"}, "unknown spatial init 'xavier'"),
    ],
)
def test_invalid_arguments_are_rejected_with_a_clear_message(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CifarResNet(10, 3, **kwargs)


@pytest.mark.parametrize("lc_form", ["folded", "gram"])
def test_a_seed_gives_the_lc_network_of_its_modules_converted_with_no_draws_between(monkeypatch, lc_form):
    # Runs are reproduced from their config and seed: the LC-Blocks draw their seeds right after the
    # modules' own init (no spatial init first), so every recorded seed keeps its network.
    torch.manual_seed(0)
    lc = CifarResNet(10, 3, depth=8, width=4, expansion=2, init="ternary", lc_form=lc_form, normalized_lc_step=True)
    after_lc = torch.get_rng_state()
    monkeypatch.setattr(LCOptions, "build", lambda self, network, **_: network)
    torch.manual_seed(0)
    expected = convert_to_lc(CifarResNet(10, 3, depth=8, width=4), 2, "ternary", lc_form, normalized_step=True)
    assert repr(lc) == repr(expected)  # the blocks' expansion, form and normalized step
    assert_same_state(lc.state_dict(), expected.state_dict())
    assert torch.equal(after_lc, torch.get_rng_state())
