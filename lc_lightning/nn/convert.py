"""Turn the spatial convolutions of any model into LC-Blocks, and find the spatial filters again."""

from collections.abc import Iterator
from dataclasses import dataclass

from torch import nn

from lc_lightning.nn.init import SpatialInit, check_init, init_spatial_
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


def _becomes_lc_block(conv: nn.Module) -> bool:
    """True for a convolution ``convert_to_lc`` converts: a plain one with a kernel > 1 and groups == 1."""
    return isinstance(conv, nn.Conv2d) and is_spatial(conv) and conv.groups == 1 and lc_parametrization(conv) is None


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
        if _becomes_lc_block(conv):
            make_lc_block(conv, expansion, init, form, normalized_step)
    return module


@dataclass(frozen=True)
class LCOptions:
    """The options every network takes for its spatial convolutions, checked when made; ``build`` applies them.

    Attributes:
        expansion: E >= 1 turns every dense spatial conv (kernel > 1, groups == 1), the stem
            included, into an LC-Block of E random filters per output channel (``convert_to_lc``);
            None keeps plain convolutions (the baseline). Grouped and depthwise convolutions stay
            plain convolutions; they are spatial, so ``FreezeSpatialConvs`` still freezes them.
        init: the random init of every spatial filter, the LC-Blocks' and the plain spatial convs'
            alike (see ``init_spatial_``).
        lc_form: how the LC-Blocks compute (see ``lc_lightning.nn.forms``): ``folded`` (one
            convolution with W = P S), ``explicit`` (the paper's two convolutions), ``preconditioned``
            (W trained with its gradient times S^T S: the same trajectory for frozen spatial filters
            and SGD) or ``gram`` (W stepped by the block through products that do not grow with E:
            the same trajectory for learned spatial filters and SGD). Every nn.Conv2d class converts
            and keeps its own forward (e.g. timm's ``Conv2dSame``, ``StdConv2d``), except that the
            explicit form needs a convolution linear in its weight (not ``StdConv2d``).
        normalized_lc_step: scale every LC-Block's step by 1 / (c_out E var(S)), so that a larger
            E gives more combinations but not a larger step on W.

    Raises InvalidArgumentError (a ValueError) for an invalid expansion, init or lc_form, checked in
    that order.
    """

    expansion: int | None = None
    init: SpatialInit = "kaiming_uniform"
    lc_form: LCForm = "folded"
    normalized_lc_step: bool = False

    def __post_init__(self) -> None:
        if self.expansion is not None:
            check_expansion(self.expansion)
        check_init(self.init)
        check_lc_form(self.lc_form)

    def build(self, network: nn.Module, *, init_converted: bool) -> nn.Module:
        """Give the spatial convolutions of ``network`` (plain ones, just made) their filters, in place; return it.

        Every spatial conv that stays plain (all of them without an expansion, the grouped and
        depthwise ones with one) is drawn with ``init``, in module order; with an expansion every
        dense spatial conv then becomes an LC-Block (``convert_to_lc``), whose filters are drawn
        afresh. ``init_converted``: draw the filters of the convs about to be converted too, before
        converting them. The LC-Blocks replace those filters, but drawing them advances torch's global
        generator, from which each LC-Block draws its seed: the choice decides which network a seed
        gives, so each network keeps the one its recorded runs were made with (TimmNet draws them,
        CifarResNet does not).
        """
        for _, conv in spatial_convs(network):
            if self.expansion is None or init_converted or not _becomes_lc_block(conv):
                init_spatial_(conv.weight, self.init)
        if self.expansion is not None:
            convert_to_lc(network, self.expansion, self.init, self.lc_form, self.normalized_lc_step)
        return network


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
