"""The filters a network actually applies: the input of every filter statistic."""

import torch
from torch import nn

from lc_lightning.nn import LCConv2d, is_spatial


def combined_filters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every spatial layer's effective filters, keyed by the module's qualified name, in module order.

    An LCConv2d gives its combined weight P @ S (Lemma 4.1 of the paper), shape
    (c_out, c_in, k_h, k_w); its inner ``spatial`` convolution is not listed on its own. A
    plain nn.Conv2d with a kernel larger than 1 x 1 gives its weight as it is, grouped and
    depthwise ones included (c_out, c_in / groups, k_h, k_w). 1 x 1 convolutions are not
    spatial and are left out. Every entry is a new float32 tensor on the model's device,
    detached from autograd and sharing no memory with the model, so it keeps its values while
    training goes on.
    """
    filters: dict[str, torch.Tensor] = {}
    lc_spatial_parts: set[nn.Module] = set()
    with torch.no_grad():
        # named_modules lists a module before its children, so an LC-Block is seen before its spatial part.
        for name, module in model.named_modules():
            if isinstance(module, LCConv2d):
                filters[name] = module.combined_weight().to(torch.float32)
                lc_spatial_parts.add(module.spatial)
            elif isinstance(module, nn.Conv2d) and is_spatial(module) and module not in lc_spatial_parts:
                filters[name] = module.weight.to(torch.float32, copy=True)
    return filters
