"""The LC-Block: a spatial convolution followed directly by learnable linear combinations."""

import torch
from torch import nn

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn.init import SpatialInit, init_spatial_


def check_expansion(expansion: int) -> int:
    """Return ``expansion`` if it is an int >= 1, else raise an InvalidArgumentError (a ValueError) that says so."""
    if isinstance(expansion, bool) or not isinstance(expansion, int) or expansion < 1:
        raise InvalidArgumentError(
            f"expansion must be an integer >= 1 (the number of spatial filters per output "
            f"channel), got {expansion!r}; use expansion=None for a plain convolution"
        )
    return expansion


class LCConv2d(nn.Module):
    """A k x k convolution (c_in -> c_out) reparameterised as an LC-Block.

    ``spatial`` is a k x k convolution c_in -> c_out * expansion without bias, holding the
    stride, padding, dilation and padding mode; ``pointwise`` is a 1 x 1 convolution
    c_out * expansion -> c_out, with the optional bias. With nothing between them, the block
    equals one k x k convolution with the combined weight P @ S (Lemma 4.1 of the paper).

    ``folded=True`` (default) computes that combined weight every forward, in fp32 even under
    autocast, and runs a single convolution: time and activation memory do not grow with the
    expansion. ``folded=False`` runs the two convolutions explicitly, as the paper does;
    both paths give the same outputs and gradients.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        bias: bool = False,
        expansion: int = 1,
        init: SpatialInit = "kaiming_uniform",
        padding_mode: str = "zeros",
        folded: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.expansion = check_expansion(expansion)
        self.folded = folded
        factory = {"device": device, "dtype": dtype}
        self.spatial = nn.Conv2d(
            in_channels, out_channels * expansion, kernel_size, stride, padding, dilation,
            bias=False, padding_mode=padding_mode, **factory,
        )  # fmt: skip
        self.pointwise = nn.Conv2d(out_channels * expansion, out_channels, 1, bias=bias, **factory)
        init_spatial_(self.spatial.weight, init)

    @property
    def in_channels(self) -> int:
        return self.spatial.in_channels

    @property
    def out_channels(self) -> int:
        return self.pointwise.out_channels

    def combined_weight(self) -> torch.Tensor:
        """The equivalent k x k conv weight P @ S, shape (c_out, c_in, k_h, k_w).

        Computed in at least fp32, also under autocast: a bf16 product would round the sum
        over c_out * E terms before the convolution rounds the result once more.
        """
        spatial = self.spatial.weight
        pointwise = self.pointwise.weight.flatten(1)
        dtype = torch.promote_types(spatial.dtype, torch.float32)
        with torch.autocast(spatial.device.type, enabled=False):
            combined = pointwise.to(dtype) @ spatial.flatten(1).to(dtype)
        return combined.view(self.out_channels, *spatial.shape[1:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.folded:
            return self.pointwise(self.spatial(x))
        weight = self.combined_weight()
        if not torch.is_autocast_enabled(x.device.type):
            weight = weight.to(x.dtype)
        # _conv_forward applies the spatial conv's stride, padding, dilation and padding mode.
        return self.spatial._conv_forward(x, weight, self.pointwise.bias)

    def extra_repr(self) -> str:
        return f"expansion={self.expansion}, folded={self.folded}"


def set_folded(module: nn.Module, folded: bool) -> nn.Module:
    """Switch every LCConv2d in ``module`` to the folded or explicit forward; return it."""
    for child in module.modules():
        if isinstance(child, LCConv2d):
            child.folded = folded
    return module
