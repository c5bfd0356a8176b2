"""The forms of the LC-Block: one parametrisation class per form, and what each answers.

Every form parametrises a convolution's ``weight`` (``torch.nn.utils.parametrize``) so that the
convolution applies the combined weight W = P S of m = c_out E random spatial filters S
(m x d, d = c_in k_h k_w) and their learnable combination P (c_out x m):

- ``folded``: S and P are parameters; W = P S is computed every forward (in fp32, also under
  autocast): one convolution, whatever E is.
- ``explicit``: the same S and P, run as the paper's two convolutions (S, then P as a 1 x 1
  convolution): the same outputs and gradients as ``folded``, at the cost the paper paid.
- ``preconditioned``: for frozen S trained with SGD. The weight is W itself, started at P0 S, and
  its gradient G is replaced by G M with M = S^T S: SGD then takes W exactly along the folded
  form's trajectory. Neither S nor P is kept.
- ``gram``: for learned S and P trained with SGD. The weight is W; the optimizer leaves it to the
  block, which takes the SGD step of P and S exactly through the products of ``nn.gram`` (c_out x d,
  c_out x c_out, d x d, float64), none of which grows with E. Neither S nor P is kept.

``preconditioned`` and ``gram`` are built at their first forward, on the device it runs on, from
S and P drawn in blocks of rows (``nn.draws``); what they track is the block's extra state (in
its state dict, not a buffer: DDP does not broadcast it every step, each process updates its own
copy from the same all-reduced gradient). A form is added here and in ``FORMS``.
"""

from typing import ClassVar, Literal

import torch
from torch import nn

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn.draws import draws
from lc_lightning.nn.gram import PRODUCTS, GramState, SGDHyperparameters


def combine(pointwise: torch.Tensor, spatial: torch.Tensor) -> torch.Tensor:
    """The combined weight P @ S of shape (c_out, c_in, k_h, k_w) for P (c_out, m) and S (m, c_in, k_h, k_w).

    Computed in at least fp32, also under autocast (a bf16 product would round the sum over
    m terms before the convolution rounds the result once more); outside autocast the result
    has S's dtype.
    """
    dtype = torch.promote_types(spatial.dtype, torch.float32)
    with torch.autocast(spatial.device.type, enabled=False):
        combined = pointwise.to(dtype) @ spatial.flatten(1).to(dtype)
    if not torch.is_autocast_enabled(spatial.device.type):
        combined = combined.to(spatial.dtype)
    return combined.view(pointwise.shape[0], *spatial.shape[1:])


class LCParametrization(nn.Module):
    """The parametrisation of an LC-Block's weight: what every form answers the rest of the code.

    ``expansion``, ``init``, ``normalized_step`` and ``seed`` are the block's (``seed`` drew its S
    and P, ``nn.draws``). ``normalized_step`` scales the block's step by 1 / (mean eigenvalue of
    S^T S) = d / ||S||_F^2, about 1 / (c_out E var(S)).
    """

    holds_factors: ClassVar[bool] = False  # S and P are parameters of the block
    takes_own_step: ClassVar[bool] = False  # W's gradient goes to ``step``, not to the optimizer's update
    spatial_filters: ClassVar[str | None] = None  # "frozen" or "learned": the only spatial filters it is exact for

    def __init__(self, expansion: int, init: str, normalized_step: bool, seed: int) -> None:
        super().__init__()
        self.expansion, self.init, self.normalized_step, self.seed = expansion, init, normalized_step, seed

    @property
    def form(self) -> str:
        raise NotImplementedError

    def combined_weight(self, conv: nn.Conv2d) -> torch.Tensor:
        """The k x k weight W the convolution applies (before any transform of its own)."""
        return conv.parametrizations.weight.original

    def factors(self, conv: nn.Conv2d) -> tuple[nn.Parameter, nn.Parameter] | None:
        """(S, P) where the block holds them as parameters, else None."""
        return None

    def pointwise_step_scale(self, conv: nn.Conv2d) -> tuple[nn.Parameter, float] | None:
        """(P, factor) where the optimizer must scale P's learning rate by factor (and divide its weight decay)."""
        return None

    @staticmethod
    def check_training(frozen_spatial: bool, optimizer: torch.optim.Optimizer | None, gradient_clip_val) -> None:
        """Raise InvalidArgumentError if training this form so would leave the folded form's trajectory."""

    def step(self, weight: nn.Parameter, grad: torch.Tensor, group: dict) -> None:
        """Take the optimizer's step with W's gradient ``grad`` and ``group``'s hyper-parameters (own-step forms)."""
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"expansion={self.expansion}, form={self.form}, normalized_step={self.normalized_step}"


class LCWeight(LCParametrization):
    """``folded`` or ``explicit``: originals S (``original0``) and P (``original1``).

    Returns W = P S, or S itself when ``explicit`` (the convolution then computes the E maps per
    output channel and ``lc_block_output`` combines them). A bias of the convolution lives here,
    added after the combination in both forms.
    """

    holds_factors = True

    def __init__(self, expansion, init, normalized_step, seed, explicit: bool, bias: torch.Tensor | None) -> None:
        super().__init__(expansion, init, normalized_step, seed)
        self.explicit = explicit
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self._drawn: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def form(self) -> str:
        return "explicit" if self.explicit else "folded"

    def forward(self, spatial: torch.Tensor, pointwise: torch.Tensor) -> torch.Tensor:
        return spatial if self.explicit else combine(pointwise, spatial)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # parametrize asks for the originals once, when the block is registered.
        if self._drawn is None:
            raise RuntimeError("an LC-Block's combined weight cannot be assigned; set its S and P (lc_weights)")
        drawn, self._drawn = self._drawn, None
        return drawn

    def combined_weight(self, conv: nn.Conv2d) -> torch.Tensor:
        spatial, pointwise = self.factors(conv)
        return combine(pointwise, spatial)

    def factors(self, conv: nn.Conv2d) -> tuple[nn.Parameter, nn.Parameter]:
        originals = conv.parametrizations.weight
        return originals.original0, originals.original1

    def pointwise_step_scale(self, conv: nn.Conv2d) -> tuple[nn.Parameter, float] | None:
        """P's learning rate times d / ||S||_F^2 and its weight decay divided by it give W the step of the
        preconditioned form with M divided by its mean eigenvalue."""
        if not self.normalized_step:
            return None
        spatial, pointwise = self.factors(conv)
        return pointwise, float(spatial[0].numel() / spatial.detach().double().square().sum())


class _BuiltAtFirstUse(LCParametrization):
    """A form that holds W (the original) and products of S and P, built at the block's first forward
    (or first ``combined_weight``) on the device W is on then. Until then W is a placeholder."""

    def __init__(self, expansion, init, normalized_step, seed) -> None:
        super().__init__(expansion, init, normalized_step, seed)
        self.built = False

    def _build(self, weight: nn.Parameter) -> None:
        raise NotImplementedError

    @torch.compiler.disable
    def build(self, weight: nn.Parameter) -> None:
        """Draw S and P in blocks of rows and build the block on ``weight``'s device, unless it is built."""
        if not self.built:
            with torch.no_grad(), torch.autocast(weight.device.type, enabled=False):
                self._build(weight)
            self.built = True

    def _rows(self, weight: torch.Tensor, dtype: torch.dtype):
        """(S rows flattened to (rows, d), P columns) on W's device, in ``dtype``."""
        for spatial, pointwise in draws(weight.shape, self.expansion, self.init, self.seed, weight.dtype):
            yield spatial.flatten(1).to(weight.device, dtype), pointwise.to(weight.device, dtype)

    def combined_weight(self, conv: nn.Conv2d) -> torch.Tensor:
        weight = conv.parametrizations.weight.original
        self.build(weight)
        return weight


class _PreconditionGradient(torch.autograd.Function):
    """Identity forward; backward replaces the weight's gradient G (c_out, d...) by G M."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, preconditioner: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(preconditioner)
        return weight.view_as(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (preconditioner,) = ctx.saved_tensors
        flat = grad.reshape(grad.shape[0], -1)
        return (flat @ preconditioner.to(flat.dtype)).view(grad.shape), None


class PreconditionedWeight(_BuiltAtFirstUse):
    """``preconditioned``: the original is W, the extra state M = S^T S (divided by its mean eigenvalue with
    ``normalized_step``), built in W's dtype."""

    form = "preconditioned"
    spatial_filters = "frozen"

    def __init__(self, expansion, init, normalized_step, seed) -> None:
        super().__init__(expansion, init, normalized_step, seed)
        self.preconditioner: torch.Tensor | None = None

    def _build(self, weight: nn.Parameter) -> None:
        d = weight[0].numel()
        combined = torch.zeros(weight.shape[0], d, dtype=weight.dtype, device=weight.device)
        preconditioner = torch.zeros(d, d, dtype=weight.dtype, device=weight.device)
        for rows, columns in self._rows(weight, weight.dtype):
            combined.addmm_(columns, rows)
            preconditioner.addmm_(rows.T, rows)
        if self.normalized_step:
            preconditioner /= preconditioner.trace() / d
        weight.copy_(combined.view_as(weight))
        self.preconditioner = preconditioner

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        self.build(weight)
        if self.preconditioner.device != weight.device:
            self.preconditioner = self.preconditioner.to(weight.device)
        return _PreconditionGradient.apply(weight, self.preconditioner)

    def get_extra_state(self) -> dict:
        return {"seed": self.seed, "preconditioner": self.preconditioner}

    def set_extra_state(self, state: dict) -> None:
        self.seed, self.preconditioner = state["seed"], state["preconditioner"]
        self.built = self.preconditioner is not None

    @staticmethod
    def check_training(frozen_spatial, optimizer, gradient_clip_val) -> None:
        if not frozen_spatial:
            raise InvalidArgumentError(
                "lc_form=preconditioned needs frozen spatial filters (freeze_spatial=true): with learnable S, "
                "W = P S does not follow a fixed preconditioner; use lc_form=gram for learnable ones"
            )
        _check_sgd_without_clipping("preconditioned", optimizer, gradient_clip_val)


class GramWeight(_BuiltAtFirstUse):
    """``gram``: the original is W, the extra state the products of ``nn.gram.GramState`` (in W's dtype, at
    least float32) and whether SGD's momentum buffers exist yet. W's gradient is the block's: ``step`` moves P
    and S along SGD (P's step scaled by d / ||S0||_F^2 with ``normalized_step``) and writes the new W."""

    form = "gram"
    takes_own_step = True
    spatial_filters = "learned"

    def __init__(self, expansion, init, normalized_step, seed) -> None:
        super().__init__(expansion, init, normalized_step, seed)
        self.state: GramState | None = None
        self.buffers_started = False  # SGD's first step with momentum sets the buffers to the gradient
        self.pointwise_scale = 1.0

    def _build(self, weight: nn.Parameter) -> None:
        c, d = weight.shape[0], weight[0].numel()
        dtype = torch.promote_types(weight.dtype, torch.float32)
        factory = {"dtype": dtype, "device": weight.device}
        w, p_pt, st_s = torch.zeros(c, d, **factory), torch.zeros(c, c, **factory), torch.zeros(d, d, **factory)
        for rows, columns in self._rows(weight, dtype):
            w.addmm_(columns, rows)
            p_pt.addmm_(columns, columns.T)
            st_s.addmm_(rows.T, rows)
        self.state = GramState.start(w, p_pt, st_s)
        if self.normalized_step:
            self.pointwise_scale = float(d / st_s.trace())
        weight.copy_(w.view_as(weight))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        self.build(weight)
        return weight

    @torch.no_grad()
    def step(self, weight: nn.Parameter, grad: torch.Tensor, group: dict) -> None:
        lr, decay = group["lr"], group["weight_decay"]
        shared = {"momentum": group["momentum"], "dampening": group["dampening"], "nesterov": group["nesterov"]}
        pointwise = SGDHyperparameters(lr * self.pointwise_scale, weight_decay=decay / self.pointwise_scale, **shared)
        spatial = SGDHyperparameters(lr, weight_decay=decay, **shared)
        if self.state.w.device != weight.device:
            self.state = self.state.to(weight.device)
        self.state = self.state.step(grad.flatten(1), pointwise, spatial, first=not self.buffers_started)
        self.buffers_started |= group["momentum"] != 0
        weight.copy_(self.state.w.view_as(weight))

    def get_extra_state(self) -> dict:
        tracked = {} if self.state is None else {name: getattr(self.state, name) for name in PRODUCTS}
        return {"seed": self.seed, "buffers_started": self.buffers_started, "pointwise_scale": self.pointwise_scale,
                **tracked}  # fmt: skip

    def set_extra_state(self, state: dict) -> None:
        self.seed, self.buffers_started, self.pointwise_scale = (
            state["seed"], state["buffers_started"], state["pointwise_scale"]
        )  # fmt: skip
        self.built = PRODUCTS[0] in state
        self.state = GramState(*(state[name] for name in PRODUCTS)) if self.built else None

    @staticmethod
    def check_training(frozen_spatial, optimizer, gradient_clip_val) -> None:
        if frozen_spatial:
            raise InvalidArgumentError(
                "lc_form=gram trains the spatial filters (freeze_spatial=false); for frozen ones use "
                "lc_form=preconditioned"
            )
        _check_sgd_without_clipping("gram", optimizer, gradient_clip_val)


def _check_sgd_without_clipping(form: str, optimizer: torch.optim.Optimizer | None, gradient_clip_val) -> None:
    """The exactness conditions shared by the forms that reduce SGD on P (and S) to W: ``optimizer`` (None: not
    built yet) is SGD, and no gradient clipping."""
    if optimizer is not None and not isinstance(optimizer, torch.optim.SGD):
        raise InvalidArgumentError(
            f"lc_form={form} is exact for SGD only, not {type(optimizer).__name__}: an adaptive optimizer scales "
            f"each entry of P's gradient, which W = P S cannot follow; use lc_form=folded"
        )
    if optimizer is not None and any(group.get("maximize") for group in optimizer.param_groups):
        raise InvalidArgumentError(f"lc_form={form} takes SGD's descent steps only, not maximize=True")
    if gradient_clip_val:
        raise InvalidArgumentError(
            f"lc_form={form} cannot clip gradients (gradient_clip_val={gradient_clip_val}): the norm of W's "
            f"gradient is not that of P's, so clipping would change the run; use lc_form=folded or no clipping"
        )


FORMS: dict[str, type[LCParametrization]] = {
    "folded": LCWeight,
    "explicit": LCWeight,
    "preconditioned": PreconditionedWeight,
    "gram": GramWeight,
}
LCForm = Literal["folded", "explicit", "preconditioned", "gram"]
