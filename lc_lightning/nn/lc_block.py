"""The LC-Block as a parametrisation of a convolution's weight, in three exact forms.

An LC-Block turns a k x k convolution (c_in -> c_out) into m = c_out * E random spatial filters
S (m x c_in x k x k) whose outputs are combined by a learnable 1 x 1 convolution P (c_out x m).
With nothing in between, the pair equals the convolution with the combined weight W = P S
(Lemma 4.1 of the paper), so the block is expressed as a parametrisation of the convolution's
``weight`` (``torch.nn.utils.parametrize``): the convolution keeps its class and its own forward
(padding "same", weight standardisation, ...), only the weight it reads is the LC-Block's.

- ``folded``: the convolution's weight is W = P S, computed every forward (in fp32, also under
  autocast); one convolution, whatever E is.
- ``explicit``: the paper's two convolutions, the convolution run with S as its weight and
  followed by P; the same outputs and gradients as ``folded`` (a reference, and the cost the
  paper paid).
- ``preconditioned``: for frozen S trained with SGD. The weight is W itself, started at P0 S,
  and its gradient G is replaced by G M with M = S^T S (d x d, d = c_in k^2): SGD with momentum,
  Nesterov and weight decay then takes W exactly along the folded form's trajectory
  (dP S = G M + wd W, and momentum is linear). Neither S nor P is kept.

Both S and P (or W0 and M) are drawn in blocks of rows in one fixed order, so that the same seed
gives the same S, P and W0 in every form, and W0 and M of any E are built without holding S.
"""

import math
from typing import Literal, get_args

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn.init import SpatialInit, check_init, init_spatial_

LCForm = Literal["folded", "explicit", "preconditioned"]
LC_FORMS: tuple[str, ...] = get_args(LCForm)

# Rows of S drawn at once: bounds the memory of building a preconditioned block; part of the
# random stream's order, so changing it changes the weights a seed gives.
ROWS_PER_DRAW = 4096


def check_expansion(expansion: int) -> int:
    """Return ``expansion`` if it is an int >= 1, else raise an InvalidArgumentError (a ValueError) that says so."""
    if isinstance(expansion, bool) or not isinstance(expansion, int) or expansion < 1:
        raise InvalidArgumentError(
            f"expansion must be an integer >= 1 (the number of spatial filters per output "
            f"channel), got {expansion!r}; use expansion=None for a plain convolution"
        )
    return expansion


def check_lc_form(form: str) -> str:
    """Return ``form`` if it names an LC-Block form, else raise InvalidArgumentError listing the choices."""
    if form not in LC_FORMS:
        raise InvalidArgumentError(f"unknown lc_form {form!r}; choose one of: {', '.join(LC_FORMS)}")
    return form


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


class LCWeight(nn.Module):
    """The parametrisation of a folded or explicit LC-Block: originals S (``original0``) and P (``original1``).

    Returns W = P S, or S itself when ``explicit`` (the convolution then computes the E maps per
    output channel and ``lc_block_output`` combines them). A bias of the convolution lives here,
    added after the combination in both forms. ``normalized_step`` marks the block for a step of
    P scaled by ``step_scale`` (see ``lc_step_scales``).
    """

    def __init__(self, expansion: int, explicit: bool, normalized_step: bool, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.expansion = expansion
        self.explicit = explicit
        self.normalized_step = normalized_step
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())
        self._drawn: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, spatial: torch.Tensor, pointwise: torch.Tensor) -> torch.Tensor:
        return spatial if self.explicit else combine(pointwise, spatial)

    def right_inverse(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # parametrize asks for the originals once, when the block is registered.
        if self._drawn is None:
            raise RuntimeError("an LC-Block's combined weight cannot be assigned; set its S and P (lc_weights)")
        drawn, self._drawn = self._drawn, None
        return drawn

    def extra_repr(self) -> str:
        form = "explicit" if self.explicit else "folded"
        return f"expansion={self.expansion}, form={form}, normalized_step={self.normalized_step}"


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


class PreconditionedWeight(nn.Module):
    """The parametrisation of a preconditioned LC-Block: the original is W, the buffer M = S^T S.

    ``expansion`` is recorded for reports; with ``normalized_step`` M was divided by its mean
    eigenvalue when the block was built.
    """

    def __init__(self, expansion: int, preconditioner: torch.Tensor, normalized_step: bool) -> None:
        super().__init__()
        self.expansion = expansion
        self.normalized_step = normalized_step
        self.register_buffer("preconditioner", preconditioner)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _PreconditionGradient.apply(weight, self.preconditioner)

    def extra_repr(self) -> str:
        return f"expansion={self.expansion}, form=preconditioned, normalized_step={self.normalized_step}"


def _draws(conv: nn.Conv2d, expansion: int, init: str):
    """Yield (S rows, P columns) blocks of an LC-Block for ``conv``, in the one order every form uses.

    S rows come from ``init`` (fans of the whole S), P columns from the default init of the
    1 x 1 convolution over m inputs, U[-1/sqrt(m), 1/sqrt(m)]. Orthogonal S is drawn whole.
    """
    weight = conv.weight
    rows = conv.out_channels * expansion
    factory = {"dtype": weight.dtype, "device": weight.device}
    step = rows if init == "orthogonal" else ROWS_PER_DRAW
    bound = 1.0 / math.sqrt(rows)
    for start in range(0, rows, step):
        count = min(step, rows - start)
        spatial = init_spatial_(torch.empty(count, *weight.shape[1:], **factory), init, rows=rows)
        pointwise = torch.empty(conv.out_channels, count, **factory).uniform_(-bound, bound)
        yield spatial, pointwise


def _applies_weight_linearly(conv: nn.Conv2d) -> bool:
    """True if the convolution's output is linear in its weight (false for weight standardisation)."""
    size = [d * (k - 1) + 1 + s for k, s, d in zip(conv.kernel_size, conv.stride, conv.dilation, strict=True)]
    weight = conv.weight.detach()
    # its own generator: probing must not shift the random stream the filters are drawn from
    x = torch.randn(1, conv.in_channels, *size, generator=torch.Generator().manual_seed(0), dtype=weight.dtype)
    x = x.to(weight.device)
    overrides = {} if conv.bias is None else {"bias": torch.zeros_like(conv.bias)}
    with torch.no_grad():
        once = torch.func.functional_call(conv, {"weight": weight, **overrides}, (x,))
        twice = torch.func.functional_call(conv, {"weight": 2 * weight, **overrides}, (x,))
    return torch.allclose(twice, 2 * once, rtol=1e-4, atol=1e-6)


def lc_block_output(conv: nn.Conv2d, args: tuple, output: torch.Tensor) -> torch.Tensor:
    """The forward hook of a folded or explicit LC-Block: combine the E maps (explicit), add the bias."""
    lc = conv.parametrizations.weight[0]
    if lc.explicit:
        pointwise = conv.parametrizations.weight.original1
        output = F.conv2d(output, pointwise[:, :, None, None])
    if lc.bias is not None:
        output = output + lc.bias.to(output.dtype).view(1, -1, 1, 1)
    return output


def make_lc_block(
    conv: nn.Conv2d, expansion: int, init: SpatialInit = "kaiming_uniform", form: LCForm = "folded",
    normalized_step: bool = False,
) -> nn.Conv2d:  # fmt: skip
    """Turn ``conv`` (any nn.Conv2d class, groups == 1) into an LC-Block in place and return it.

    Its spatial filters are freshly drawn with ``init``; its stride, padding, dilation and
    forward stay its own. ``normalized_step`` scales the block's step by 1 / (c_out E var(S)),
    the mean eigenvalue of M = S^T S: in the preconditioned form M is divided by it, in the
    folded and explicit forms P's step is scaled (``lc_step_scales``). Raises
    InvalidArgumentError for an explicit form of a convolution that is not linear in its weight
    (e.g. weight standardisation: the two convolutions would not equal it).
    """
    check_expansion(expansion)
    check_init(init)
    check_lc_form(form)
    if conv.groups != 1:
        raise InvalidArgumentError(f"an LC-Block needs a dense convolution (groups == 1), got groups={conv.groups}")
    if form == "explicit" and not _applies_weight_linearly(conv):
        raise InvalidArgumentError(
            f"{type(conv).__name__} is not linear in its weight (e.g. it standardises it), so the explicit "
            f"form's two convolutions would not equal it; use lc_form=folded or preconditioned"
        )
    if form == "preconditioned":
        d = conv.weight[0].numel()
        combined = torch.zeros(conv.out_channels, d, dtype=conv.weight.dtype, device=conv.weight.device)
        preconditioner = torch.zeros(d, d, dtype=combined.dtype, device=combined.device)
        for spatial, pointwise in _draws(conv, expansion, init):
            rows = spatial.flatten(1)
            combined.addmm_(pointwise, rows)
            preconditioner.addmm_(rows.T, rows)
        if normalized_step:
            preconditioner /= preconditioner.trace() / d
        with torch.no_grad():
            conv.weight.copy_(combined.view_as(conv.weight))
        parametrize.register_parametrization(
            conv, "weight", PreconditionedWeight(expansion, preconditioner, normalized_step)
        )
        return conv
    spatial_rows, pointwise_columns = zip(*_draws(conv, expansion, init), strict=True)
    spatial, pointwise = torch.cat(spatial_rows), torch.cat(pointwise_columns, dim=1)
    lc = LCWeight(expansion, form == "explicit", normalized_step, conv.bias)
    lc._drawn = (spatial, pointwise)
    if conv.bias is not None:
        conv.register_parameter("bias", None)
    parametrize.register_parametrization(conv, "weight", lc, unsafe=True)
    conv.register_forward_hook(lc_block_output)
    return conv


def lc_form(conv: nn.Module) -> LCForm | None:
    """The form of the LC-Block ``conv`` is, or None for anything else."""
    if not (isinstance(conv, nn.Conv2d) and parametrize.is_parametrized(conv, "weight")):
        return None
    block = conv.parametrizations.weight[0]
    if isinstance(block, PreconditionedWeight):
        return "preconditioned"
    if isinstance(block, LCWeight):
        return "explicit" if block.explicit else "folded"
    return None


def lc_weights(conv: nn.Conv2d) -> tuple[nn.Parameter, nn.Parameter]:
    """(S, P) of a folded or explicit LC-Block: S (m, c_in, k_h, k_w), P (c_out, m)."""
    if lc_form(conv) not in ("folded", "explicit"):
        raise ValueError(f"{type(conv).__name__} is not a folded or explicit LC-Block: it has no S and P")
    originals = conv.parametrizations.weight
    return originals.original0, originals.original1


def combined_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The k x k weight the convolution applies (before any transform of its own, e.g. standardisation).

    P @ S for a folded or explicit LC-Block, W for a preconditioned one, the weight of any other conv.
    """
    form = lc_form(conv)
    if form in ("folded", "explicit"):
        spatial, pointwise = lc_weights(conv)
        return combine(pointwise, spatial)
    if form == "preconditioned":
        return conv.parametrizations.weight.original
    return conv.weight


def set_lc_form(module: nn.Module, form: Literal["folded", "explicit"]) -> nn.Module:
    """Switch every folded or explicit LC-Block in ``module`` to ``form``; return the module.

    Both forms hold the same S and P (the same state dict). A preconditioned block has no S and
    P to switch to, and stays as it is.
    """
    if form not in ("folded", "explicit"):
        raise InvalidArgumentError(f"set_lc_form switches between folded and explicit, got {form!r}")
    for child in module.modules():
        if lc_form(child) in ("folded", "explicit"):
            child.parametrizations.weight[0].explicit = form == "explicit"
    return module


def lc_blocks(module: nn.Module):
    """Yield (qualified name, conv) for every LC-Block of ``module``, in module order."""
    for name, child in module.named_modules():
        if lc_form(child) is not None:
            yield name, child


def lc_step_scales(module: nn.Module) -> list[tuple[nn.Parameter, float]]:
    """(P, factor) of every folded or explicit LC-Block built with ``normalized_step``.

    The factor is d / ||S||_F^2 = 1 / (mean eigenvalue of S^T S), about 1 / (c_out E var(S)):
    P's learning rate times it and P's weight decay divided by it give W the step of the
    preconditioned form with M divided by its mean eigenvalue.
    """
    scales = []
    for _, conv in lc_blocks(module):
        if lc_form(conv) != "preconditioned" and conv.parametrizations.weight[0].normalized_step:
            spatial, pointwise = lc_weights(conv)
            scales.append((pointwise, float(spatial[0].numel() / spatial.detach().double().square().sum())))
    return scales


def check_preconditioning_is_exact(
    module: nn.Module, frozen_spatial: bool, optimizer: torch.optim.Optimizer | None = None,
    gradient_clip_val: float | None = None,
) -> None:  # fmt: skip
    """Raise InvalidArgumentError if ``module`` has preconditioned LC-Blocks trained where W would
    not follow the folded form's trajectory: learnable spatial filters, an optimizer that is not
    SGD (momentum, Nesterov, dampening and weight decay are linear and allowed), or gradient
    clipping (the norm of W's gradient is not P's). ``optimizer`` None: not built yet."""
    if not any(lc_form(conv) == "preconditioned" for _, conv in lc_blocks(module)):
        return
    if not frozen_spatial:
        raise InvalidArgumentError(
            "lc_form=preconditioned needs frozen spatial filters (freeze_spatial=true): with learnable S, "
            "W = P S does not follow a fixed preconditioner; use lc_form=folded for learnable ones"
        )
    if optimizer is not None and not isinstance(optimizer, torch.optim.SGD):
        raise InvalidArgumentError(
            f"lc_form=preconditioned is exact for SGD only, not {type(optimizer).__name__}: an adaptive "
            f"optimizer scales each entry of P's gradient, which W = P S cannot follow; use lc_form=folded"
        )
    if gradient_clip_val:
        raise InvalidArgumentError(
            f"lc_form=preconditioned cannot clip gradients (gradient_clip_val={gradient_clip_val}): the norm of "
            f"W's gradient is not that of P's, so clipping would change the run; use lc_form=folded or no clipping"
        )
