"""SGD on the factors of W = P S, tracked through products whose sizes do not depend on m.

P (c_out x m) and S (m x d) trained by torch's SGD (momentum mu, dampening, Nesterov, weight
decay, any lr per step) see only G = dL/dW: P's gradient is G S^T + wd P and S's is P^T G + wd S.
Every new P and momentum buffer B_P is therefore a linear combination of (P, B_P, G S^T), every
new S and B_S one of (S, B_S, P^T G), with scalar coefficients (``sgd_coefficients``). So the
products of the new factors are linear combinations of products of the old ones with G, none
of which has a dimension m (``GramState.step``):

- c_out x d: W = P S, P B_S, B_P S, B_P B_S;
- c_out x c_out: P P^T, P B_P^T, B_P B_P^T;
- d x d: S^T S, S^T B_S, B_S^T B_S (and S^T B_S transposed, so that no step reads a transpose).

Before the first step there are no buffers (zero); torch's first step sets B = the gradient. Per
step this is a few products of sizes c_out d^2 and c_out^2 d and one pass over each stack.
"""

from dataclasses import dataclass

import torch

# GramState's tensors, each a stack of the products of one shape
PRODUCTS = ("combined", "left", "right")


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


def _pair_coefficients(pairs) -> list[list[float]]:
    """For each (x, y) of ``pairs``, the coefficients x[i] y[j], i major."""
    return [[a * b for a in x for b in y] for x, y in pairs]


@dataclass
class GramState:
    """The tracked products of P, S and their momentum buffers, see the module's docstring:

    - ``combined`` (4, c_out, d): P S = W, P B_S, B_P S, B_P B_S;
    - ``left`` (3, c_out, c_out): P P^T, P B_P^T, B_P B_P^T;
    - ``right`` (4, d, d): S^T S, S^T B_S, B_S^T B_S, B_S^T S.
    """

    combined: torch.Tensor
    left: torch.Tensor
    right: torch.Tensor

    @classmethod
    def start(cls, w: torch.Tensor, p_pt: torch.Tensor, st_s: torch.Tensor) -> "GramState":
        """The state before the first step: W = P S, P P^T and S^T S; no momentum buffers yet."""
        combined, left, right = (torch.zeros(n, *x.shape, dtype=x.dtype, device=x.device)
                                 for n, x in ((4, w), (3, p_pt), (4, st_s)))  # fmt: skip
        combined[0], left[0], right[0] = w, p_pt, st_s
        return cls(combined, left, right)

    @property
    def w(self) -> torch.Tensor:
        """W = P S."""
        return self.combined[0]

    def to(self, device: torch.device) -> "GramState":
        """The same state on ``device``."""
        return GramState(self.combined.to(device), self.left.to(device), self.right.to(device))

    def step(
        self, grad: torch.Tensor, pointwise: SGDHyperparameters, spatial: SGDHyperparameters, first: bool
    ) -> "GramState":
        """The state after one SGD step of P (``pointwise``) and S (``spatial``) with G = ``grad`` (c_out x d)."""
        g = grad.to(self.combined.dtype)
        w, p_bs, bp_s, _ = self.combined
        p_pt, p_bpt, _ = self.left
        p, bp = sgd_coefficients(pointwise, first)  # P' and B_P' in (P, B_P, G S^T)
        s, bs = sgd_coefficients(spatial, first)  # S' and B_S' in (S, B_S, P^T G)
        right_pairs = [(s, s), (s, bs), (bs, bs), (bs, s)]
        coefficients = torch.tensor(
            _pair_coefficients([(p, s), (p, bs), (bp, s), (bp, bs)]) + _pair_coefficients([(p, p), (p, bp), (bp, bp)])
            + [[x[0] * y[0], x[0] * y[1], x[1] * y[1], x[1] * y[0], 0, 0, 0, 0, 0] for x, y in right_pairs],
            dtype=g.dtype,
        ).to(g.device, non_blocking=True)  # fmt: skip
        a_g = p_pt @ g  # P P^T G = P (P^T G)
        g_wt = g @ w.T  # G W^T = (G S^T) P^T
        g_q, g_r = g @ self.right[:2]  # (G S^T) S, (G S^T) B_S
        # (P, B_P, G S^T) times (S, B_S, P^T G): c_out x d
        products = [w, p_bs, a_g, bp_s, self.combined[3], p_bpt.T @ g, g_q, g_r, g_wt @ g]
        combined = (coefficients[:4] @ torch.stack(products).flatten(1)).view_as(self.combined)
        # (P, B_P, G S^T) times their transposes: c_out x c_out
        bp_gt, g_q_gt = bp_s @ g.T, g_q @ g.T
        products = [p_pt, p_bpt, g_wt.T, p_bpt.T, self.left[2], bp_gt, g_wt, bp_gt.T, g_q_gt]
        left = (coefficients[4:7] @ torch.stack(products).flatten(1)).view_as(self.left)
        # (S, B_S, P^T G) transposed times themselves, d x d: first the terms without V = P^T G, then those with
        # it, G^T N1 + N2^T G (V^T S = G^T W, V^T B_S = G^T P B_S, and V^T V = G^T P P^T G, half in N1, half in N2)
        right = (coefficients[7:, :4] @ self.right.flatten(1)).view_as(self.right)
        halves = [((x[2] * y[0], x[2] * y[1], x[2] * y[2] / 2), (y[2] * x[0], y[2] * x[1], x[2] * y[2] / 2))
                  for x, y in right_pairs]  # fmt: skip
        n = torch.tensor([c for pair in halves for c in pair], dtype=g.dtype).to(g.device, non_blocking=True)
        n1, n2 = (n @ torch.stack([w, p_bs, a_g]).flatten(1)).view(len(right_pairs), 2, *g.shape).unbind(1)
        gs = g.expand(len(right_pairs), *g.shape)
        # G^T N1 + N2^T G as one product, [G; N2]^T [N1; G]: one pass over the d x d stack; B_S^T S by its own
        # products too, which costs less than a transposed copy
        right.baddbmm_(torch.cat([gs, n2], dim=1).transpose(1, 2), torch.cat([n1, gs], dim=1))
        return GramState(combined, left, right)
