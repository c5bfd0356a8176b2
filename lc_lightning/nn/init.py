"""Random initialisations of spatial convolution weights, selected by name.

Every init draws i.i.d. or (semi-)orthogonal filters for a weight of shape
(c_out, c_in, k_h, k_w); fan_in = c_in * k_h * k_w and fan_out = c_out * k_h * k_w.
"""

import math
from typing import Literal, get_args

import torch
from torch import nn

from lc_lightning.errors import InvalidArgumentError

SpatialInit = Literal[
    "kaiming_uniform",
    "kaiming_normal",
    "glorot_uniform",
    "glorot_normal",
    "orthogonal",
    "binary",
    "ternary",
]
SPATIAL_INITS: tuple[str, ...] = get_args(SpatialInit)


def _fan_in(weight: torch.Tensor) -> int:
    return weight[0].numel()


def _kaiming_uniform_bound(weight: torch.Tensor) -> float:
    """Bound a of PyTorch's default Conv2d init U[-a, a]: a = 1 / sqrt(fan_in)."""
    return 1.0 / math.sqrt(_fan_in(weight))


def check_init(init: str) -> str:
    """Return ``init`` if it names a spatial init, else raise InvalidArgumentError listing the choices."""
    if init not in SPATIAL_INITS:
        raise InvalidArgumentError(f"unknown spatial init {init!r}; choose one of: {', '.join(SPATIAL_INITS)}")
    return init


@torch.no_grad()
def init_spatial_(
    weight: torch.Tensor,
    init: str = "kaiming_uniform",
    rows: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Fill a conv weight in place with the named random init and return it.

    - ``kaiming_uniform``: PyTorch's default, U[-a, a] with a = 1/sqrt(fan_in) (the paper's).
    - ``kaiming_normal``: N(0, 2/fan_in) (``nn.init.kaiming_normal_`` defaults).
    - ``glorot_uniform``: U[-b, b] with b = sqrt(6/(fan_in + fan_out)).
    - ``glorot_normal``: N(0, 2/(fan_in + fan_out)).
    - ``orthogonal``: the (c_out, fan_in) matrix has orthonormal rows, or orthonormal
      columns when c_out > fan_in (``nn.init.orthogonal_``).
    - ``binary``: +-a/sqrt(3) with equal probability, the variance of ``kaiming_uniform``.
    - ``ternary``: {-c, 0, +c} with equal probability, c = a*sqrt(1/2), the same variance.

    ``rows``: ``weight`` is a block of the filters of a weight with this many (c_out) rows,
    whose fan_out the Glorot inits use; None: the whole weight. Orthogonal filters are drawn
    for the whole weight only. ``generator``: draw from it instead of torch's global one.
    Raises InvalidArgumentError (a ValueError) for an unknown name, listing the choices.
    """
    check_init(init)
    fan_in = _fan_in(weight)
    fan_out = (weight.shape[0] if rows is None else rows) * weight[0, 0].numel()
    if init == "kaiming_uniform":
        bound = _kaiming_uniform_bound(weight)
        return weight.uniform_(-bound, bound, generator=generator)
    if init == "kaiming_normal":
        return weight.normal_(0.0, math.sqrt(2.0 / fan_in), generator=generator)
    if init == "glorot_uniform":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        return weight.uniform_(-bound, bound, generator=generator)
    if init == "glorot_normal":
        return weight.normal_(0.0, math.sqrt(2.0 / (fan_in + fan_out)), generator=generator)
    if init == "orthogonal":
        if rows not in (None, weight.shape[0]):
            raise ValueError("orthogonal filters are drawn for the whole weight, not a block of its rows")
        return nn.init.orthogonal_(weight, generator=generator)
    # Var(U[-a, a]) = a^2 / 3; binary +-v has variance v^2, ternary {-c, 0, c} has 2c^2 / 3.
    bound = _kaiming_uniform_bound(weight)
    if init == "binary":
        return weight.random_(0, 2, generator=generator).mul_(2).sub_(1).mul_(bound / math.sqrt(3.0))
    return weight.random_(0, 3, generator=generator).sub_(1).mul_(bound / math.sqrt(2.0))  # ternary
