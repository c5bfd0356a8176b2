"""Turn the spatial convolutions of any model into LC-Blocks, and find the spatial filters again."""

from collections.abc import Iterator

from torch import nn

from lc_lightning.nn.init import SpatialInit, check_init
from lc_lightning.nn.lc_block import (
    LCForm,
    check_expansion,
    check_lc_form,
    lc_blocks,
    lc_parametrization,
    make_lc_block,
)


def is_spatial(conv: nn.Conv2d) -> bool:
    """True for a convolution whose kernel is larger than 1 x 1 (any groups)."""
    return any(k > 1 for k in conv.kernel_size)


def convert_to_lc(
    module: nn.Module, expansion: int, init: SpatialInit = "kaiming_uniform", form: LCForm = "folded",
    normalized_step: bool = False,
) -> nn.Module:  # fmt: skip
    """Make every convolution with a kernel > 1 and groups == 1 an LC-Block of the given form, in place.

    Any nn.Conv2d class converts (``make_lc_block``): it keeps its class, channels, kernel size,
    stride, padding, dilation, padding mode, device, dtype and bias; its spatial filters are
    freshly drawn with ``init``, in module order. Grouped and depthwise convolutions and 1 x 1
    convolutions stay as they are; existing LC-Blocks are left alone. Returns ``module``.
    """
    check_expansion(expansion)
    check_init(init)
    check_lc_form(form)
    for _, conv in list(module.named_modules()):
        if isinstance(conv, nn.Conv2d) and is_spatial(conv) and conv.groups == 1 and lc_parametrization(conv) is None:
            make_lc_block(conv, expansion, init, form, normalized_step)
    return module


def spatial_convs(module: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    """Yield (qualified name, conv) for every spatial convolution of a model, in order.

    These are the convolutions with a kernel > 1: plain ones (grouped and depthwise included)
    and LC-Blocks. 1 x 1 convolutions are not spatial.
    """
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d) and is_spatial(child):
            yield name, child


def spatial_weights(module: nn.Module) -> dict[str, nn.Parameter]:
    """The spatial filters a model learns unless frozen, by qualified parameter name, in order.

    The weight of every plain spatial convolution, and S of every LC-Block that holds it (folded,
    explicit: ``<conv>.parametrizations.weight.original0``). A preconditioned or gram LC-Block has
    no S: its weight is the combined W.
    """
    weights = {}
    blocks = {name: conv for name, conv in lc_blocks(module)}
    for name, conv in spatial_convs(module):
        prefix = f"{name}." if name else ""
        if name not in blocks:
            weights[f"{prefix}weight"] = conv.weight
        elif (factors := lc_parametrization(conv).factors(conv)) is not None:
            weights[f"{prefix}parametrizations.weight.original0"] = factors[0]
    return weights
