"""The LC-Block as a parametrisation of a convolution's weight: making one, and asking it what it is.

An LC-Block turns a k x k convolution (c_in -> c_out) into m = c_out * E random spatial filters
S (m x c_in x k x k) whose outputs are combined by a learnable 1 x 1 convolution P (c_out x m).
With nothing in between, the pair equals the convolution with the combined weight W = P S
(Lemma 4.1 of the paper), so the block is expressed as a parametrisation of the convolution's
``weight`` (``torch.nn.utils.parametrize``): the convolution keeps its class and its own forward
(padding "same", weight standardisation, ...), only the weight it reads is the LC-Block's. The
forms it computes in are the classes of ``nn.forms``; ``lc_parametrization`` returns a block's,
and the functions here ask it, never its name.
"""

from typing import get_args

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils import parametrize

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn.draws import block_seed, draws
from lc_lightning.nn.forms import FORMS, LCForm, LCParametrization, LCWeight
from lc_lightning.nn.init import SpatialInit, check_init

LC_FORMS: tuple[str, ...] = get_args(LCForm)
assert set(LC_FORMS) == set(FORMS), "every form has a class in nn.forms.FORMS"


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

    Its spatial filters are freshly drawn with ``init`` from a seed the block draws from torch's
    global generator (``nn.draws``): the same seed gives the same S, P and W0 in every form. Its
    stride, padding, dilation and forward stay its own. ``normalized_step`` scales the block's step
    by 1 / (c_out E var(S)), the mean eigenvalue of M = S^T S: in the preconditioned form M is
    divided by it, in the others P's step is scaled. A ``preconditioned`` or ``gram`` block is built
    at its first forward, on the device that runs it. Raises InvalidArgumentError for an explicit form
    of a convolution that is not linear in its weight (e.g. weight standardisation: the two
    convolutions would not equal it).
    """
    check_expansion(expansion)
    check_init(init)
    check_lc_form(form)
    if conv.groups != 1:
        raise InvalidArgumentError(f"an LC-Block needs a dense convolution (groups == 1), got groups={conv.groups}")
    if form == "explicit" and not _applies_weight_linearly(conv):
        raise InvalidArgumentError(
            f"{type(conv).__name__} is not linear in its weight (e.g. it standardises it), so the explicit "
            f"form's two convolutions would not equal it; use lc_form=folded or gram"
        )
    seed = block_seed()
    if not FORMS[form].holds_factors:
        with torch.no_grad():
            conv.weight.zero_()  # a placeholder until the block is built
        block = FORMS[form](expansion, init, normalized_step, seed)
        parametrize.register_parametrization(conv, "weight", block, unsafe=True)  # safe: no forward (a build) now
        return conv
    drawn = draws(conv.weight.shape, expansion, init, seed, conv.weight.dtype)
    spatial_rows, pointwise_columns = zip(*drawn, strict=True)
    factory = {"device": conv.weight.device}
    spatial, pointwise = torch.cat(spatial_rows).to(**factory), torch.cat(pointwise_columns, dim=1).to(**factory)
    lc = LCWeight(expansion, init, normalized_step, seed, form == "explicit", conv.bias)
    lc._drawn = (spatial, pointwise)
    if conv.bias is not None:
        conv.register_parameter("bias", None)
    parametrize.register_parametrization(conv, "weight", lc, unsafe=True)
    conv.register_forward_hook(lc_block_output)
    return conv


def lc_parametrization(conv: nn.Module) -> LCParametrization | None:
    """The parametrisation of the LC-Block ``conv`` is (it answers what its form is and does), or None."""
    if not (isinstance(conv, nn.Conv2d) and parametrize.is_parametrized(conv, "weight")):
        return None
    block = conv.parametrizations.weight[0]
    return block if isinstance(block, LCParametrization) else None


def lc_form(conv: nn.Module) -> LCForm | None:
    """The form of the LC-Block ``conv`` is, or None for anything else."""
    block = lc_parametrization(conv)
    return None if block is None else block.form


def lc_weights(conv: nn.Conv2d) -> tuple[nn.Parameter, nn.Parameter]:
    """(S, P) of an LC-Block that holds them (folded, explicit): S (m, c_in, k_h, k_w), P (c_out, m)."""
    block = lc_parametrization(conv)
    factors = None if block is None else block.factors(conv)
    if factors is None:
        raise ValueError(f"{type(conv).__name__} is not an LC-Block that holds S and P (folded or explicit)")
    return factors


def combined_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The k x k weight the convolution applies (before any transform of its own, e.g. standardisation).

    P @ S for a folded or explicit LC-Block, W for one that holds W (building it if it is not yet),
    the weight of any other conv.
    """
    block = lc_parametrization(conv)
    return conv.weight if block is None else block.combined_weight(conv)


def set_lc_form(module: nn.Module, form: LCForm) -> nn.Module:
    """Switch every folded or explicit LC-Block in ``module`` to ``form`` (folded or explicit); return the module.

    Both forms hold the same S and P (the same state dict). A block of another form has no S and
    P to switch to, and stays as it is.
    """
    if form not in ("folded", "explicit"):
        raise InvalidArgumentError(f"set_lc_form switches between folded and explicit, got {form!r}")
    for _, conv in lc_blocks(module):
        block = lc_parametrization(conv)
        if isinstance(block, LCWeight):
            block.explicit = form == "explicit"
    return module


def lc_blocks(module: nn.Module):
    """Yield (qualified name, conv) for every LC-Block of ``module``, in module order."""
    for name, child in module.named_modules():
        if lc_parametrization(child) is not None:
            yield name, child


def lc_step_scales(module: nn.Module) -> list[tuple[nn.Parameter, float]]:
    """(P, factor) of every LC-Block whose P the optimizer must step with a scaled learning rate: P's learning
    rate times factor and its weight decay divided by it (``LCParametrization.pointwise_step_scale``)."""
    scales = (lc_parametrization(conv).pointwise_step_scale(conv) for _, conv in lc_blocks(module))
    return [scale for scale in scales if scale is not None]


def check_lc_training(
    module: nn.Module, frozen_spatial: bool, optimizer: torch.optim.Optimizer | None = None,
    gradient_clip_val: float | None = None,
) -> None:  # fmt: skip
    """Raise InvalidArgumentError if ``module`` has LC-Blocks of a form that training so would take off the
    folded form's trajectory (each form's ``check_training``): e.g. preconditioned ones with learnable spatial
    filters, or an optimizer that is not SGD. ``optimizer`` None: not built yet."""
    for form in {type(lc_parametrization(conv)) for _, conv in lc_blocks(module)}:
        form.check_training(frozen_spatial, optimizer, gradient_clip_val)


class OwnSteps:
    """Takes the gradient of every LC-Block that takes its own step (``takes_own_step``) out of ``optimizer``'s
    update and steps the block with the hyper-parameters of the group its weight is in.

    ``take_gradients()`` goes after the backward passes and any unscaling of the gradients, before the
    optimizer's update (Lightning's ``on_before_optimizer_step``); the blocks step in the optimizer's step
    post-hook, so a step the optimizer skips (e.g. a scaler's, on an infinite gradient) does not move them,
    and the learning rate is the step's (a schedule steps after it).
    """

    def __init__(self, module: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self._blocks = {}
        for _, conv in lc_blocks(module):
            block = lc_parametrization(conv)
            if block.takes_own_step:
                self._blocks[id(conv.parametrizations.weight.original)] = block
        self._optimizer = optimizer
        self._gradients: dict[int, torch.Tensor] = {}
        if self._blocks:
            optimizer.register_step_post_hook(lambda *_: self._step())

    def _own(self):
        for group in self._optimizer.param_groups:
            for weight in group["params"]:
                if id(weight) in self._blocks:
                    yield group, weight

    def take_gradients(self) -> None:
        """Move the blocks' gradients out of the optimizer's reach (their ``grad`` becomes None)."""
        for _, weight in self._own():
            if weight.grad is not None:
                self._gradients[id(weight)], weight.grad = weight.grad, None

    def _step(self) -> None:
        for group, weight in self._own():
            if id(weight) in self._gradients:
                self._blocks[id(weight)].step(weight, self._gradients.pop(id(weight)), group)
