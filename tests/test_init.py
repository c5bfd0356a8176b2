import math

import pytest
import torch

from lc_lightning.nn import SPATIAL_INITS, init_spatial_

C_OUT, C_IN, K = 256, 64, 3
FAN_IN, FAN_OUT = C_IN * K * K, C_OUT * K * K
KAIMING_UNIFORM_BOUND = 1 / math.sqrt(FAN_IN)  # PyTorch's default Conv2d init
KAIMING_UNIFORM_VAR = KAIMING_UNIFORM_BOUND**2 / 3
GLOROT_BOUND = math.sqrt(6 / (FAN_IN + FAN_OUT))


def draw(init: str, shape=(C_OUT, C_IN, K, K)) -> torch.Tensor:
    torch.manual_seed(0)
    return init_spatial_(torch.empty(shape), init)


def kurtosis(w: torch.Tensor) -> float:
    """E[(w - mean)^4] / Var^2: 1.8 for a uniform, 3 for a normal distribution."""
    centred = w.double() - w.double().mean()
    return (centred.pow(4).mean() / centred.pow(2).mean() ** 2).item()


# (init, variance, kurtosis); 147,456 samples: the variance is within ~1% of its value.
IID = [
    ("kaiming_uniform", KAIMING_UNIFORM_VAR, 1.8),
    ("kaiming_normal", 2 / FAN_IN, 3.0),
    ("glorot_uniform", GLOROT_BOUND**2 / 3, 1.8),
    ("glorot_normal", 2 / (FAN_IN + FAN_OUT), 3.0),
    ("binary", KAIMING_UNIFORM_VAR, 1.0),
    ("ternary", KAIMING_UNIFORM_VAR, 1.5),
]


@pytest.mark.parametrize("init, variance, expected_kurtosis", IID)
def test_iid_inits_have_the_claimed_mean_variance_and_shape(init, variance, expected_kurtosis):
    w = draw(init).double()
    std_of_mean = math.sqrt(variance / w.numel())
    assert abs(w.mean().item()) < 4 * std_of_mean
    assert w.var().item() == pytest.approx(variance, rel=0.03)
    assert kurtosis(w) == pytest.approx(expected_kurtosis, abs=0.1)


@pytest.mark.parametrize("init, bound", [("kaiming_uniform", KAIMING_UNIFORM_BOUND), ("glorot_uniform", GLOROT_BOUND)])
def test_uniform_inits_fill_their_support(init, bound):
    w = draw(init)
    assert w.abs().max().item() <= bound
    assert w.abs().max().item() > 0.999 * bound


def test_binary_takes_two_values_equally_often():
    w = draw("binary")
    magnitude = KAIMING_UNIFORM_BOUND / math.sqrt(3)
    assert torch.allclose(w.abs(), torch.full_like(w, magnitude))
    assert (w > 0).double().mean().item() == pytest.approx(0.5, abs=0.01)


def test_ternary_takes_three_values_equally_often():
    w = draw("ternary")
    magnitude = KAIMING_UNIFORM_BOUND / math.sqrt(2)
    assert torch.allclose(torch.unique(w), torch.tensor([-magnitude, 0.0, magnitude]))
    for value in (-magnitude, 0.0, magnitude):
        assert torch.isclose(w, torch.tensor(value)).double().mean().item() == pytest.approx(1 / 3, abs=0.01)


@pytest.mark.parametrize("c_out, c_in", [(16, 8), (64, 3), (256, 64)])
def test_orthogonal_is_semi_orthogonal(c_out, c_in):
    matrix = draw("orthogonal", (c_out, c_in, 3, 3)).flatten(1).double()
    if c_out <= matrix.shape[1]:
        gram = matrix @ matrix.T  # orthonormal rows
    else:
        gram = matrix.T @ matrix  # more filters than dimensions: orthonormal columns
    torch.testing.assert_close(gram, torch.eye(gram.shape[0], dtype=torch.float64), atol=1e-5, rtol=0)


def test_every_init_is_tested():
    tested = {name for name, _, _ in IID} | {"orthogonal"}
    assert tested == set(SPATIAL_INITS)
