"""The spatial variance heatmap (Fig. 7b of the paper): where in the kernel the filters of a model differ."""

from collections.abc import Iterable

import torch

from lc_lightning.errors import InvalidArgumentError


def spatial_variance(weights: Iterable[torch.Tensor]) -> dict[tuple[int, int], torch.Tensor]:
    """Per kernel position, the variance of all 2-D kernels of the given layers; one map per kernel size.

    Each weight (c_out, c_in, k_h, k_w) is divided by its own standard deviation over all its
    elements (no mean is subtracted), so every layer counts at the same scale whatever its
    init or weight decay. Then the kernels of all layers with the same (k_h, k_w) are stacked
    to N x k_h x k_w and the variance over the N kernels is taken at each position. Both the
    standard deviation and the variance are population statistics (divided by the number of
    values, not one less), as numpy's std and var. Returns {(k_h, k_w): float32 map of shape
    (k_h, k_w)} in the order the sizes first appear; a layer whose weights are all equal
    (standard deviation 0) has no pattern to scale and is skipped, so a size with only such
    layers has no map. Computed in float64 on the CPU. Raises an InvalidArgumentError (a
    ValueError) for a weight that is not 4-D.
    """
    kernels_by_size: dict[tuple[int, int], list[torch.Tensor]] = {}
    for weight in weights:
        if weight.dim() != 4:
            raise InvalidArgumentError(
                f"expected convolution weights of shape (c_out, c_in, k_h, k_w), got shape {tuple(weight.shape)}"
            )
        layer = weight.detach().to("cpu", torch.float64)
        std = layer.std(correction=0)
        if std == 0:
            continue
        k_h, k_w = layer.shape[2:]
        kernels_by_size.setdefault((k_h, k_w), []).append((layer / std).flatten(0, 1))
    return {
        size: torch.cat(kernels).var(dim=0, correction=0).to(torch.float32) for size, kernels in kernels_by_size.items()
    }
