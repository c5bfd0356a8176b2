"""Filter variance entropy (Gavrikov & Keuper, CVPR 2022, "CNN Filter DB"): how diverse a layer's filters are.

The steps and constants are those of PAPER.md, "Filter variance entropy".
"""

import math

import torch

from lc_lightning.errors import InvalidArgumentError

# Logistic fit of the entropy of random 3 x 3 layers over log2 of their number of filters (step 6).
_THRESHOLD_L = 1.2618047
_THRESHOLD_X0 = 2.30436435
_THRESHOLD_K = 0.88767525
_THRESHOLD_B = -0.31050834


def _filter_rows(weight: torch.Tensor) -> torch.Tensor:
    """The weight as n = c_out * c_in rows of k_h * k_w values, float64 on the CPU (step 1)."""
    if weight.dim() != 4:
        raise InvalidArgumentError(
            f"expected a convolution weight of shape (c_out, c_in, k_h, k_w), got shape {tuple(weight.shape)}"
        )
    n = weight.shape[0] * weight.shape[1]
    if n < 2:
        raise InvalidArgumentError(
            f"the filter variance entropy needs at least 2 filters (c_out * c_in >= 2, the variance divides "
            f"by n - 1), got weight of shape {tuple(weight.shape)}"
        )
    return weight.detach().to("cpu", torch.float64).reshape(n, -1)


def filter_variance_entropy(weight: torch.Tensor) -> float:
    """The filter variance entropy H of one layer's weight (c_out, c_in, k_h, k_w), in log10 units.

    The n = c_out * c_in 2-D filters are rows of k_h * k_w values; each column is centred on
    its mean over the filters; the singular values s_i of that matrix give the variances
    v_i = s_i^2 / (n - 1) along its principal directions, p_i = v_i / sum(v), and
    H = -sum p_i log10 p_i with 0 log 0 = 0. H is 0 when all filters are one pattern (or
    multiples of one pattern), at most log10(k_h * k_w) when the variance is spread evenly,
    0 when sum(v) = 0, and unchanged by scaling the weight. Computed in float64 on the CPU.
    A weight holding NaN or inf has no entropy: the result is NaN. Raises an
    InvalidArgumentError (a ValueError) unless the weight is 4-D with c_out * c_in >= 2.
    """
    rows = _filter_rows(weight)
    if not rows.isfinite().all():
        return math.nan
    centred = rows - rows.mean(dim=0)
    variances = torch.linalg.svdvals(centred).square() / (rows.shape[0] - 1)
    total = variances.sum()
    if total == 0:
        return 0.0
    shares = variances / total
    # xlogy(0, 0) = 0: directions without variance (zero singular values) add nothing.
    return (-torch.special.xlogy(shares, shares).sum() / math.log(10)).item()


def randomness_threshold(n: int) -> float:
    """H_T(n) = L / (1 + exp(-k (log2 n - x0))) + b: the entropy of a random 3 x 3 layer of n filters.

    A fit for 3 x 3 filters only (L = 1.2618047, x0 = 2.30436435, k = 0.88767525,
    b = -0.31050834): about 0.886 for n = 48 and 0.951 for n = 4096. It is positive only from
    n = 3 on, so smaller n raise an InvalidArgumentError (a ValueError).
    """
    if n < 3:
        raise InvalidArgumentError(
            f"the randomness threshold is fitted for layers of at least 3 filters (it is not positive "
            f"below), got n = {n}"
        )
    return _THRESHOLD_L / (1 + math.exp(-_THRESHOLD_K * (math.log2(n) - _THRESHOLD_X0))) + _THRESHOLD_B


def normalized_entropy(weight: torch.Tensor) -> float:
    """The filter variance entropy of a weight (c_out, c_in, k_h, k_w) over its reference value.

    For 3 x 3 kernels: H / H_T(n) with n = c_out * c_in; >= 1 looks random, 0 is one
    repeated pattern. H_T is only calibrated for 3 x 3 filters, so any other kernel size
    k_h x k_w is normalised by the largest possible entropy log10(k_h * k_w) instead, giving
    a value in [0, 1]. Raises an InvalidArgumentError (a ValueError) for a weight that
    ``filter_variance_entropy`` rejects, for 1 x 1 kernels (no spatial pattern, log10(1) = 0)
    and for 3 x 3 layers of fewer than 3 filters (see ``randomness_threshold``).
    """
    entropy = filter_variance_entropy(weight)
    c_out, c_in, k_h, k_w = weight.shape
    if (k_h, k_w) == (3, 3):
        return entropy / randomness_threshold(c_out * c_in)
    if k_h * k_w == 1:
        raise InvalidArgumentError("a 1 x 1 convolution has no spatial filters to normalise the entropy of")
    return entropy / math.log10(k_h * k_w)
