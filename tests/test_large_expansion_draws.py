"""S and P of an LC-Block whose m = c_out E rows are drawn in several blocks (``nn.draws``) have the statistics
of one draw of the whole S and P: every block takes its scale from the whole weight, and no block repeats
another."""

import pytest
import torch
from torch import nn

from lc_lightning.nn import SPATIAL_INITS, init_spatial_, lc_weights, make_lc_block
from lc_lightning.nn.draws import ROWS_PER_DRAW

C_OUT, C_IN, K = 4, 1, 3
EXPANSION = 2560
ROWS = C_OUT * EXPANSION  # m = 10,240 rows of S: blocks of 4096, 4096 and 2048 rows
BOUNDED = {"kaiming_uniform", "glorot_uniform", "binary", "ternary"}  # inits whose largest value is their bound


def row_blocks() -> list[slice]:
    """The rows of S (columns of P) each draw fills."""
    return [slice(start, min(start + ROWS_PER_DRAW, ROWS)) for start in range(0, ROWS, ROWS_PER_DRAW)]


def drawn(init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """S and P of an LC-Block C_IN -> C_OUT, K x K, of E = EXPANSION with ``init``."""
    torch.manual_seed(0)
    spatial, pointwise = lc_weights(make_lc_block(nn.Conv2d(C_IN, C_OUT, K, bias=False), EXPANSION, init))
    return spatial.detach(), pointwise.detach()


def whole(init: str) -> tuple[torch.Tensor, torch.Tensor]:
    """S (m, c_in, k, k) drawn at once by the plain init, and P as the default init of a 1 x 1 convolution
    over m inputs draws it (U[-1/sqrt(m), 1/sqrt(m)])."""
    generator = torch.Generator().manual_seed(1)
    spatial = init_spatial_(torch.empty(ROWS, C_IN, K, K), init, generator=generator)
    torch.manual_seed(1)
    pointwise = nn.Conv2d(ROWS, C_OUT, 1, bias=False).weight.detach().flatten(1)
    return spatial, pointwise


def assert_like(block: torch.Tensor, reference: torch.Tensor, bounded: bool, what: str) -> None:
    """``block`` has ``reference``'s standard deviation (each holds thousands of values: 3 % is far beyond
    chance) and, for a bounded distribution, its bound (the largest magnitude, within 1 %)."""
    assert block.double().std().item() == pytest.approx(reference.double().std().item(), rel=0.03), what
    if bounded:
        assert block.abs().max().item() == pytest.approx(reference.abs().max().item(), rel=0.01), what


def test_the_expansion_needs_several_draws_of_unequal_size():
    sizes = [part.stop - part.start for part in row_blocks()]
    assert sizes == [ROWS_PER_DRAW, ROWS_PER_DRAW, ROWS - 2 * ROWS_PER_DRAW] and sizes[-1] != ROWS_PER_DRAW


@pytest.mark.parametrize("init", SPATIAL_INITS)
def test_every_block_of_s_and_p_has_the_statistics_of_one_draw_of_the_whole(init):
    spatial, pointwise = drawn(init)
    assert spatial.shape == (ROWS, C_IN, K, K) and pointwise.shape == (C_OUT, ROWS)
    reference_spatial, reference_pointwise = whole(init)
    if init == "orthogonal":  # m > d: the whole S has orthonormal columns, not each block
        rows = spatial.flatten(1).double()
        torch.testing.assert_close(rows.T @ rows, torch.eye(C_IN * K * K, dtype=torch.float64), rtol=0, atol=1e-5)
    for part in row_blocks():
        what = f"{init}, rows {part.start}:{part.stop}"
        assert_like(spatial[part], reference_spatial, init in BOUNDED, f"S {what}")
        assert_like(pointwise[:, part], reference_pointwise, True, f"P {what}")
        if init in ("binary", "ternary"):  # the same values exactly
            assert torch.equal(spatial[part].unique(), reference_spatial.unique()), what


@pytest.mark.parametrize("init", SPATIAL_INITS)
def test_no_block_repeats_another(init):
    spatial, pointwise = drawn(init)
    size = ROWS - 2 * ROWS_PER_DRAW
    parts = [slice(start, start + size) for start in range(0, ROWS, ROWS_PER_DRAW)]  # as many rows from each
    for first, second in ((0, 1), (0, 2), (1, 2)):
        for name, block in (("S", lambda part: spatial[part]), ("P", lambda part: pointwise[:, part])):
            values = torch.stack([block(parts[first]).flatten(), block(parts[second]).flatten()]).double()
            correlation = torch.corrcoef(values)[0, 1].item()
            # independent draws of n values: |correlation| ~ 1 / sqrt(n) (n >= 8192 here); a copy: 1
            assert abs(correlation) < 0.05, f"{init}: {name} of blocks {first} and {second}"
