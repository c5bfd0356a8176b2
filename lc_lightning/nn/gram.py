"""SGD on the factors of W = P S, tracked through products whose sizes do not depend on m.

P (c_out x m) and S (m x d) trained by torch's SGD (momentum mu, dampening, Nesterov, weight
decay, any lr per step) see only G = dL/dW: P's gradient is G S^T + wd P and S's is P^T G + wd S.
Every new P and momentum buffer B_P is therefore a linear combination of (P, B_P, G S^T), every
new S and B_S one of (S, B_S, P^T G), with scalar coefficients (``sgd_coefficients``). So the
products of the new factors are linear combinations of products of the old ones with G, none
of which has a dimension m (``GramState.step``):

- c_out x d: W = P S, P B_S, B_P S, B_P B_S;
- c_out x c_out: P P^T, P B_P^T, B_P B_P^T;
- d x d: S^T S, S^T B_S, B_S^T B_S.

Before the first step there are no buffers (zero); torch's first step sets B = the gradient.
"""

from dataclasses import dataclass
from functools import cache

import torch

# The tracked products, in the order of GramState's fields
PRODUCTS = ("w", "p_bs", "bp_s", "bp_bs", "p_pt", "p_bpt", "bp_bpt", "st_s", "st_bs", "bst_bs")


@dataclass(frozen=True)
class SGDHyperparameters:
    """One factor's step as torch.optim.SGD takes it (maximize off)."""

    lr: float
    momentum: float
    dampening: float
    nesterov: bool
    weight_decay: float


def sgd_coefficients(step: SGDHyperparameters, first: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(new factor, new buffer) of one SGD step, as coefficients of (factor, buffer, loss gradient).

    The gradient is ``loss gradient + weight_decay * factor``; with momentum, the buffer becomes
    that gradient on the first step and ``momentum * buffer + (1 - dampening) * gradient`` after;
    the direction is the buffer, or the gradient plus ``momentum`` times the new buffer (Nesterov).
    """
    gradient = (step.weight_decay, 0.0, 1.0)
    if step.momentum == 0:
        buffer, direction = (0.0, 0.0, 0.0), gradient
    else:
        keep, add = (0.0, 1.0) if first else (step.momentum, 1.0 - step.dampening)
        buffer = tuple(add * g + keep * (i == 1) for i, g in enumerate(gradient))
        direction = buffer
        if step.nesterov:
            direction = tuple(g + step.momentum * b for g, b in zip(gradient, buffer, strict=True))
    new = tuple((i == 0) - step.lr * a for i, a in enumerate(direction))
    return new, buffer


class _Products:
    """The products a step combines, each computed once and only if a non-zero coefficient needs it."""

    def __init__(self, compute: dict) -> None:
        self._compute, self._done = compute, {}

    def __call__(self, i: int, j: int) -> torch.Tensor:
        if (i, j) not in self._done:
            self._done[i, j] = self._compute[i, j]()
        return self._done[i, j]


def _bilinear(u, v, product, like: torch.Tensor) -> torch.Tensor:
    """sum over i, j of u[i] v[j] product(i, j), skipping zero coefficients (zeros shaped ``like`` if all are)."""
    total = None
    for i, a in enumerate(u):
        for j, b in enumerate(v):
            if a * b != 0:
                term = product(i, j)
                total = term * (a * b) if total is None else total.add_(term, alpha=a * b)
    return torch.zeros_like(like) if total is None else total


@dataclass
class GramState:
    """The tracked products of P, S and their momentum buffers (float64), see the module's docstring."""

    w: torch.Tensor
    p_bs: torch.Tensor
    bp_s: torch.Tensor
    bp_bs: torch.Tensor
    p_pt: torch.Tensor
    p_bpt: torch.Tensor
    bp_bpt: torch.Tensor
    st_s: torch.Tensor
    st_bs: torch.Tensor
    bst_bs: torch.Tensor

    @classmethod
    def start(cls, w: torch.Tensor, p_pt: torch.Tensor, st_s: torch.Tensor) -> "GramState":
        """The state before the first step: W = P S, P P^T and S^T S; no momentum buffers yet."""
        return cls(w, *(torch.zeros_like(w),) * 3, p_pt, *(torch.zeros_like(p_pt),) * 2, st_s,
                   *(torch.zeros_like(st_s),) * 2)  # fmt: skip

    def step(
        self, grad: torch.Tensor, pointwise: SGDHyperparameters, spatial: SGDHyperparameters, first: bool
    ) -> "GramState":
        """The state after one SGD step of P (``pointwise``) and S (``spatial``) with G = ``grad`` (c_out x d)."""
        g = grad.to(self.w.dtype)
        p_new, p_buffer = sgd_coefficients(pointwise, first)
        s_new, s_buffer = sgd_coefficients(spatial, first)
        # left factors (P, B_P, G S^T) and right ones (S, B_S, P^T G), indexed 0, 1, 2
        g_st_s, g_wt, p_pt_g = cache(lambda: g @ self.st_s), cache(lambda: g @ self.w.T), cache(lambda: self.p_pt @ g)
        cross = _Products({
            (0, 0): lambda: self.w, (0, 1): lambda: self.p_bs, (0, 2): lambda: p_pt_g(),
            (1, 0): lambda: self.bp_s, (1, 1): lambda: self.bp_bs, (1, 2): lambda: self.p_bpt.T @ g,
            (2, 0): lambda: g_st_s(), (2, 1): lambda: g @ self.st_bs, (2, 2): lambda: g_wt() @ g,
        })  # fmt: skip
        left = _Products({
            (0, 0): lambda: self.p_pt, (0, 1): lambda: self.p_bpt, (0, 2): lambda: g_wt().T,
            (1, 1): lambda: self.bp_bpt, (1, 2): lambda: self.bp_s @ g.T, (2, 2): lambda: g_st_s() @ g.T,
        })  # fmt: skip
        right = _Products({
            (0, 0): lambda: self.st_s, (0, 1): lambda: self.st_bs, (0, 2): lambda: self.w.T @ g,
            (1, 1): lambda: self.bst_bs, (1, 2): lambda: self.p_bs.T @ g, (2, 2): lambda: g.T @ p_pt_g(),
        })  # fmt: skip

        def symmetric(table):  # the Gram products: entry (j, i) is entry (i, j) transposed
            return lambda i, j: table(i, j) if i <= j else table(j, i).T

        left, right = symmetric(left), symmetric(right)
        return GramState(
            w=_bilinear(p_new, s_new, cross, self.w),
            p_bs=_bilinear(p_new, s_buffer, cross, self.w),
            bp_s=_bilinear(p_buffer, s_new, cross, self.w),
            bp_bs=_bilinear(p_buffer, s_buffer, cross, self.w),
            p_pt=_bilinear(p_new, p_new, left, self.p_pt),
            p_bpt=_bilinear(p_new, p_buffer, left, self.p_pt),
            bp_bpt=_bilinear(p_buffer, p_buffer, left, self.p_pt),
            st_s=_bilinear(s_new, s_new, right, self.st_s),
            st_bs=_bilinear(s_new, s_buffer, right, self.st_s),
            bst_bs=_bilinear(s_buffer, s_buffer, right, self.st_s),
        )
