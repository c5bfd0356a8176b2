"""The error bf16-mixed adds to a folded LC-Block, with the combined weight in fp32 (as the LC-Block
computes it) and, for comparison, in bf16.

    python benchmarks/bf16_folding.py [--device cpu|cuda] [--channels 16] [--seed 0]

For LC-Blocks of c -> c channels, 3x3, expansion E, with Kaiming-uniform spatial filters and
pointwise weights, on random 8 x c x 32 x 32 inputs: the relative error (Frobenius norm of the
difference over that of the reference, fp64) of the combined weight P @ S and of the block's
output under autocast. The output error of bf16-mixed itself (rounding inputs and weights to
bf16, about 2^-9 relative) is the floor; a combined weight rounded in bf16 adds to it.
"""

import argparse

import torch
from torch import nn
from torch.nn import functional as F

from lc_lightning.nn import combined_weight, lc_weights, make_lc_block


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return ((value.double() - reference).norm() / reference.norm()).item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--channels", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"LC-Block {args.channels} -> {args.channels}, 3x3, on {device}; relative errors against fp64")
    columns = ("weight fp32", "weight bf16", "output, fp32 weight", "output, bf16 weight")
    print(f"{'E':>5} | {columns[0]:>11} | {columns[1]:>11} | {columns[2]:>19} | {columns[3]:>19}")
    print("-" * 78)
    for expansion in (1, 8, 32, 128):
        torch.manual_seed(args.seed)
        block = make_lc_block(nn.Conv2d(args.channels, args.channels, 3, padding=1), expansion).to(device)
        x = torch.randn(8, args.channels, 32, 32, device=device)
        spatial, pointwise = lc_weights(block)
        exact_weight = (pointwise.double() @ spatial.flatten(1).double()).view_as(combined_weight(block))
        exact_output = F.conv2d(x.double(), exact_weight, padding=1)
        with torch.autocast(device.type, dtype=torch.bfloat16):
            fp32_weight = combined_weight(block)
            fp32_output = block(x)
            bf16_weight = (pointwise @ spatial.flatten(1)).view_as(fp32_weight)  # autocast: a bf16 matmul
            bf16_output = F.conv2d(x, bf16_weight, padding=1)
        print(
            f"{expansion:>5} | {relative_error(fp32_weight, exact_weight):>11.2e} | "
            f"{relative_error(bf16_weight, exact_weight):>11.2e} | "
            f"{relative_error(fp32_output, exact_output):>19.2e} | {relative_error(bf16_output, exact_output):>19.2e}"
        )


if __name__ == "__main__":
    main()
