"""The filters a network actually applies: the input of every filter statistic."""

import torch
from torch import nn

from lc_lightning.nn import combined_weight, spatial_convs


def combined_filters(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every spatial layer's effective filters, keyed by the module's qualified name, in module order.

    An LC-Block gives its combined weight (Lemma 4.1 of the paper): P @ S in the folded and
    explicit forms, W in the preconditioned form, shape (c_out, c_in, k_h, k_w). A plain
    convolution with a kernel larger than 1 x 1 gives its weight as it is, grouped and
    depthwise ones included (c_out, c_in / groups, k_h, k_w). 1 x 1 convolutions are not
    spatial and are left out. Every entry is a new float32 tensor on the model's device,
    detached from autograd and sharing no memory with the model, so it keeps its values while
    training goes on.
    """
    with torch.no_grad():
        return {name: combined_weight(conv).to(torch.float32, copy=True) for name, conv in spatial_convs(model)}
