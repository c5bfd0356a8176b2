"""The random S and P of an LC-Block, drawn from the block's own seed in one fixed order.

Every form draws from this: S in blocks of rows (``init``, fans of the whole S), each followed by
its columns of P (the default init of a 1 x 1 convolution over m inputs, U[-1/sqrt(m), 1/sqrt(m)]),
on the CPU from a generator seeded with the block's seed. So one seed gives the same S, P and
W0 in every form and on every device, and a block can be built later, on the device it trains on,
without holding S.
"""

import math
from collections.abc import Iterator

import torch

from lc_lightning.nn.init import init_spatial_

# Rows of S drawn at once: bounds the memory of building a block that does not hold S; part of the
# random stream's order, so changing it changes the weights a seed gives.
ROWS_PER_DRAW = 4096


def block_seed() -> int:
    """A seed for one LC-Block, drawn from torch's global CPU generator (so ``torch.manual_seed`` fixes it)."""
    return int(torch.randint(0, 2**62, (), dtype=torch.int64))


def draws(
    shape: torch.Size, expansion: int, init: str, seed: int, dtype: torch.dtype
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield (S rows, P columns) on the CPU for a convolution weight of ``shape`` (c_out, c_in, k_h, k_w).

    S rows have shape (rows, c_in, k_h, k_w), P columns (c_out, rows); together m = c_out E rows.
    Orthogonal S is drawn whole. The global random state is not touched.
    """
    out_channels = shape[0]
    rows = out_channels * expansion
    step = rows if init == "orthogonal" else ROWS_PER_DRAW
    bound = 1.0 / math.sqrt(rows)
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, rows, step):
        count = min(step, rows - start)
        spatial = init_spatial_(torch.empty(count, *shape[1:], dtype=dtype), init, rows=rows, generator=generator)
        pointwise = torch.empty(out_channels, count, dtype=dtype).uniform_(-bound, bound, generator=generator)
        yield spatial, pointwise
