import math

import pytest
import torch
from torch import nn

from lc_lightning.analysis.entropy import filter_variance_entropy, normalized_entropy, randomness_threshold
from lc_lightning.analysis.filters import combined_filters
from lc_lightning.analysis.spatial import spatial_variance
from lc_lightning.models import CifarResNet
from lc_lightning.nn import lc_weights, make_lc_block, spatial_convs


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# combined_filters


class LCAndPlainConvs(nn.Module):
    def __init__(self):
        super().__init__()
        self.lc = make_lc_block(nn.Conv2d(3, 4, 3, padding=1, bias=True), expansion=4)
        self.plain = nn.Conv2d(4, 6, 3, padding=1)
        self.depthwise = nn.Conv2d(6, 6, 3, padding=1, groups=6)
        self.pointwise = nn.Conv2d(6, 5, 1)

    def forward(self, x):
        return self.pointwise(self.depthwise(self.plain(self.lc(x))))


def test_combined_filters_lists_lc_blocks_and_plain_spatial_convs_with_the_weights_they_apply():
    torch.manual_seed(0)
    model = LCAndPlainConvs()
    filters = combined_filters(model)
    assert list(filters) == ["lc", "plain", "depthwise"]  # not the 1 x 1 "pointwise"
    spatial, pointwise = lc_weights(model.lc)  # (16, 3, 3, 3), (4, 16)
    # Lemma 4.1: output channel o applies sum over the 16 spatial filters m of P[o, m] * S[m].
    expected_lc = torch.stack([sum(pointwise[o, m] * spatial[m] for m in range(16)) for o in range(4)])
    torch.testing.assert_close(filters["lc"], expected_lc.detach())
    assert filters["lc"].shape == (4, 3, 3, 3)
    assert torch.equal(filters["plain"], model.plain.weight.detach())
    assert torch.equal(filters["depthwise"], model.depthwise.weight.detach())
    assert filters["depthwise"].shape == (6, 1, 3, 3)
    for name, weight in filters.items():
        assert weight.dtype == torch.float32, name
        assert not weight.requires_grad and weight.grad_fn is None, name
    # The entries are copies: training the model on does not change them.
    with torch.no_grad():
        model.plain.weight.add_(1.0)
    assert not torch.equal(filters["plain"], model.plain.weight.detach())


def test_combined_filters_of_resnet_lc_have_the_names_and_shapes_of_the_baseline_spatial_convs():
    torch.manual_seed(0)
    baseline = dict(spatial_convs(CifarResNet(10, 3)))
    filters = combined_filters(CifarResNet(10, 3, expansion=2))
    assert len(filters) == 19
    assert list(filters) == list(baseline)
    assert [w.shape for w in filters.values()] == [conv.weight.shape for conv in baseline.values()]


# Filter variance entropy


def test_a_layer_of_identical_filters_has_zero_entropy():
    pattern = torch.randn(3, 3, generator=seeded(0))
    assert filter_variance_entropy(pattern.expand(8, 4, 3, 3)) == 0.0
    assert normalized_entropy(pattern.expand(8, 4, 3, 3)) == 0.0


def test_multiples_of_one_filter_have_zero_entropy():
    pattern = torch.randn(3, 3, generator=seeded(0))
    multiples = torch.randn(32, generator=seeded(1))[:, None, None] * pattern  # c_i * f, mean c != 0
    weight = multiples.reshape(8, 4, 3, 3)
    assert abs(filter_variance_entropy(weight)) < 1e-12
    assert abs(normalized_entropy(weight)) < 1e-12


@pytest.mark.parametrize("shape", [(16, 3, 3, 3), (64, 64, 3, 3)], ids=["n=48", "n=4096"])
def test_random_gaussian_layers_look_random(shape):
    weight = torch.randn(shape, generator=seeded(0))
    # Measured: 1.0242 (H = 0.9076) for n = 48 and 1.0028 (H = 0.9537) for n = 4096;
    # PAPER.md: H ~ 0.91 and ~ 0.954, random layers near 1.0-1.14.
    assert 0.95 <= normalized_entropy(weight) <= 1.2
    assert filter_variance_entropy(weight) <= math.log10(9)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_entropy_does_not_depend_on_the_scale_of_the_weight(scale):
    weight = torch.randn(16, 3, 3, 3, generator=seeded(0))
    assert filter_variance_entropy(weight * scale) == pytest.approx(filter_variance_entropy(weight), rel=1e-6)
    assert normalized_entropy(weight * scale) == pytest.approx(normalized_entropy(weight), rel=1e-6)


def test_zero_singular_values_give_no_nan():
    weight = torch.zeros(16, 3, 3, 3)
    weight[:, :, 0, :] = torch.randn(16, 3, 3, generator=seeded(0))  # only the top row varies: rank <= 3 of 9
    entropy = filter_variance_entropy(weight)
    assert math.isfinite(entropy)
    # Three directions at most: 0 < H <= log10(3).
    assert 0.0 < entropy <= math.log10(3) + 1e-12
    assert math.isfinite(normalized_entropy(weight))


def test_randomness_threshold_matches_the_values_in_the_paper():
    assert randomness_threshold(48) == pytest.approx(0.886, abs=5e-4)
    assert randomness_threshold(4096) == pytest.approx(0.951, abs=5e-4)
    # n = 4: log2 4 - x0 = -0.30436435; exp(0.88767525 * 0.30436435) = exp(0.27017670) = 1.31019594;
    # 1.2618047 / 2.31019594 = 0.54618947; + b = 0.54618947 - 0.31050834 = 0.23568113.
    assert randomness_threshold(4) == pytest.approx(0.23568113, abs=1e-8)


def test_entropy_of_a_hand_computed_layer():
    # n = 4 filters (weight 2 x 2 x 3 x 3), all 0.5 except one pixel each:
    #   f1 = 0.5 + 1 at (0, 0), f2 = 0.5 - 1 at (0, 0), f3 = 0.5 + 2 at (1, 1), f4 = 0.5 - 2 at (1, 1).
    weight = torch.full((4, 3, 3), 0.5)
    weight[0, 0, 0], weight[1, 0, 0] = 1.5, -0.5
    weight[2, 1, 1], weight[3, 1, 1] = 2.5, -1.5
    weight = weight.reshape(2, 2, 3, 3)
    # 1-2. The column means are all 0.5, so the centred rows are +e1, -e1, +2 e5, -2 e5 (e_j: pixel j of 9).
    # 3. X^T X = diag(1 + 1, 0, 0, 0, 4 + 4, 0, ...): singular values sqrt(2) and sqrt(8), seven zeros.
    # 4. v = (2 / 3, 8 / 3, 0, ...), sum(v) = 10 / 3, p = (0.2, 0.8, 0, ...).
    # 5. H = -(0.2 log10 0.2 + 0.8 log10 0.8) = 0.2 log10 5 + 0.8 log10 1.25
    #      = 0.2 * 0.69897000 + 0.8 * 0.09691001 = 0.13979400 + 0.07752801 = 0.21732201.
    assert filter_variance_entropy(weight) == pytest.approx(0.21732201, abs=1e-6)
    # 7. 3 x 3 kernels: H / H_T(4) = 0.21732201 / 0.23568113 = 0.92210187.
    assert normalized_entropy(weight) == pytest.approx(0.92210187, abs=1e-6)


def test_other_kernel_sizes_are_normalised_by_log10_of_their_number_of_values():
    # 50 filters of 5 x 5: +e_j and -e_j for each of the 25 pixels. Centred (the mean is 0),
    # X^T X = 2 I, so all 25 variances are equal: p_j = 1 / 25, H = log10(25) = 1.39794001.
    eye = torch.eye(25)
    uniform = torch.cat([eye, -eye]).reshape(10, 5, 5, 5)
    assert filter_variance_entropy(uniform) == pytest.approx(1.39794001, abs=1e-6)
    assert normalized_entropy(uniform) == pytest.approx(1.0, abs=1e-6)  # not H / H_T(50) = 1.53
    # The two-direction layer of the hand-computed 3 x 3 example, in 5 x 5: H = 0.21732201, over log10(25).
    two_directions = torch.zeros(4, 25)
    two_directions[0, 0], two_directions[1, 0], two_directions[2, 12], two_directions[3, 12] = 1, -1, 2, -2
    two_directions = two_directions.reshape(4, 1, 5, 5)
    assert normalized_entropy(two_directions) == pytest.approx(0.21732201 / 1.39794001, abs=1e-6)


def test_non_square_kernels_use_all_their_values():
    # 6 filters of 1 x 3: +-e1, +-e2, +-e3 give three equal variances: H = log10(3) = 0.47712125.
    eye = torch.eye(3)
    weight = torch.cat([eye, -eye]).reshape(6, 1, 1, 3)
    assert filter_variance_entropy(weight) == pytest.approx(0.47712125, abs=1e-6)
    assert normalized_entropy(weight) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 1, 3, 3), "at least 2 filters"),
        ((9, 9), r"shape \(c_out, c_in, k_h, k_w\), got shape \(9, 9\)"),
        ((4, 3, 3), r"got shape \(4, 3, 3\)"),
    ],
)
def test_entropy_rejects_weights_without_two_2d_filters(shape, message):
    with pytest.raises(ValueError, match=message):
        filter_variance_entropy(torch.randn(shape))
    with pytest.raises(ValueError, match=message):
        normalized_entropy(torch.randn(shape))


def test_normalisation_rejects_what_it_cannot_normalise():
    with pytest.raises(ValueError, match="1 x 1 convolution"):
        normalized_entropy(torch.randn(8, 4, 1, 1))
    with pytest.raises(ValueError, match="at least 3 filters"):
        normalized_entropy(torch.randn(2, 1, 3, 3))


def test_a_non_finite_weight_has_nan_entropy():
    weight = torch.randn(16, 3, 3, 3, generator=seeded(0))
    weight[0, 0, 0, 0] = float("inf")
    assert math.isnan(filter_variance_entropy(weight))


# Spatial variance


def test_filters_that_differ_only_in_the_centre_have_variance_only_there():
    weight = torch.full((8, 4, 3, 3), 0.3)
    weight[:, :, 1, 1] = torch.randn(8, 4, generator=seeded(0))
    heatmap = spatial_variance([weight])[(3, 3)]
    centre = torch.zeros(3, 3, dtype=torch.bool)
    centre[1, 1] = True
    assert torch.all(heatmap[~centre] == 0)
    assert heatmap[1, 1] > 0


def test_each_kernel_size_gets_its_own_map():
    layers = [torch.randn(8, 3, 3, 3), torch.randn(4, 8, 5, 5), torch.randn(8, 8, 3, 3)]
    heatmaps = spatial_variance(layers)
    assert list(heatmaps) == [(3, 3), (5, 5)]
    assert heatmaps[(3, 3)].shape == (3, 3) and heatmaps[(5, 5)].shape == (5, 5)
    assert all(heatmap.dtype == torch.float32 for heatmap in heatmaps.values())


def test_each_layer_is_scaled_by_its_own_std():
    first = torch.randn(8, 3, 3, 3, generator=seeded(0))
    second = torch.randn(8, 8, 3, 3, generator=seeded(1))
    heatmap = spatial_variance([first, second])[(3, 3)]
    torch.testing.assert_close(spatial_variance([first, second * 1000])[(3, 3)], heatmap)
    torch.testing.assert_close(spatial_variance([first * 1e-3, second])[(3, 3)], heatmap)


def test_spatial_variance_of_a_hand_computed_layer():
    # Population convention (divide by the number of values) for both the std and the variance.
    # Two kernels: +1 everywhere but +3 in the centre, and its negative. The 18 values have mean 0
    # and variance (16 * 1 + 2 * 9) / 18 = 17 / 9, so std = sqrt(17) / 3 and the scaled values are
    # +-3 / sqrt(17) off-centre and +-9 / sqrt(17) in the centre. Variance over the 2 kernels
    # (mean 0): 9 / 17 = 0.52941176 off-centre and 81 / 17 = 4.76470588 in the centre.
    kernel = torch.ones(3, 3)
    kernel[1, 1] = 3
    weight = torch.stack([kernel, -kernel]).reshape(2, 1, 3, 3)
    expected = torch.full((3, 3), 0.52941176)
    expected[1, 1] = 4.76470588
    torch.testing.assert_close(spatial_variance([weight])[(3, 3)], expected, rtol=0, atol=1e-6)


def test_kernels_of_all_layers_are_pooled_before_the_variance():
    # Layer A: kernels all +1 and all -1 (std 1). Layer B: kernels all 5 and all 7 (std 1, no mean
    # removed). Pooled values per position: 1, -1, 5, 7 with mean 3; variance (4 + 16 + 4 + 16) / 4 = 10,
    # where the mean of the per-layer variances would be 1.
    layer_a = torch.stack([torch.ones(3, 3), -torch.ones(3, 3)]).reshape(2, 1, 3, 3)
    layer_b = torch.stack([torch.full((3, 3), 5.0), torch.full((3, 3), 7.0)]).reshape(1, 2, 3, 3)
    torch.testing.assert_close(spatial_variance([layer_a, layer_b])[(3, 3)], torch.full((3, 3), 10.0))


def test_a_constant_layer_is_skipped_instead_of_giving_nan():
    weight = torch.randn(8, 3, 3, 3, generator=seeded(0))
    heatmaps = spatial_variance([weight, torch.full((4, 4, 3, 3), 0.7), torch.zeros(2, 2, 5, 5)])
    assert list(heatmaps) == [(3, 3)]
    torch.testing.assert_close(heatmaps[(3, 3)], spatial_variance([weight])[(3, 3)])


def test_spatial_variance_rejects_a_weight_that_is_not_4d():
    with pytest.raises(ValueError, match=r"got shape \(9, 3, 3\)"):
        spatial_variance([torch.randn(9, 3, 3)])
