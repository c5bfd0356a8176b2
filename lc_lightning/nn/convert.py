"""Turn the spatial convolutions of any model into LC-Blocks, and find them again."""

from collections.abc import Iterator

from torch import nn

from lc_lightning.nn.init import SpatialInit, check_init
from lc_lightning.nn.lc_conv import LCConv2d, check_expansion


def is_spatial(conv: nn.Conv2d) -> bool:
    """True for a convolution whose kernel is larger than 1 x 1 (any groups)."""
    return any(k > 1 for k in conv.kernel_size)


def _to_lc(conv: nn.Conv2d, expansion: int, init: str) -> LCConv2d:
    if type(conv) is not nn.Conv2d:
        raise TypeError(
            f"cannot convert {type(conv).__qualname__} (a subclass of nn.Conv2d with its own "
            f"forward) into an LC-Block; only plain nn.Conv2d layers are converted"
        )
    return LCConv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, bias=conv.bias is not None, expansion=expansion, init=init,
        padding_mode=conv.padding_mode, device=conv.weight.device, dtype=conv.weight.dtype,
    )  # fmt: skip


def convert_to_lc(module: nn.Module, expansion: int, init: SpatialInit = "kaiming_uniform") -> nn.Module:
    """Replace every nn.Conv2d with a kernel > 1 and groups == 1 by an LCConv2d.

    The LC-Block keeps the convolution's channels, kernel size, stride, padding, dilation,
    padding mode, device and dtype; a bias moves to the pointwise part. Its spatial filters
    are freshly drawn with ``init``. Grouped and depthwise convolutions and 1 x 1
    convolutions stay as they are; existing LC-Blocks are left alone. The conversion is in
    place; the (possibly new) root module is returned.
    """
    check_expansion(expansion)
    check_init(init)
    if isinstance(module, nn.Conv2d) and is_spatial(module) and module.groups == 1:
        return _to_lc(module, expansion, init)
    for name, child in module.named_children():
        if not isinstance(child, LCConv2d):
            setattr(module, name, convert_to_lc(child, expansion, init))
    return module


def spatial_convs(module: nn.Module) -> Iterator[tuple[str, nn.Conv2d]]:
    """Yield (qualified name, conv) for every spatial convolution of a model, in order.

    These are the plain convolutions with a kernel > 1 (grouped and depthwise ones
    included) and the ``spatial`` part of every LC-Block; pointwise 1 x 1 convolutions
    are not spatial.
    """
    for name, child in module.named_modules():
        if isinstance(child, nn.Conv2d) and is_spatial(child):
            yield name, child
