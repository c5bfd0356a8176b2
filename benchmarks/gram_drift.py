"""How far a float32 gram LC-Block drifts from the folded trajectory over a long run, against the folded form's own
sensitivity: both printed as a table.

    python benchmarks/gram_drift.py [--steps 15000] [--every 1000] [--width 16] [--expansion 8]

Three copies of ResNet-LC-8-W xE with learned spatial filters train in lockstep on the same Fashion-MNIST batches
(64 images, real data from /usr/share/datasets/fashion-mnist, apt-get install dataset-fashion-mnist, averaged
down to 14 x 14 pixels so that the run takes minutes on a CPU) with the
module's recipe (SGD, Nesterov 0.9, lr 0.01, weight decay 0.01, cosine per step over the run, label smoothing
0.1, BN in training mode), all in float32: the folded form (the reference), the folded form with every initial
weight multiplied by 1 + 1e-7 N(0, 1) (about float32's rounding), and the gram form, whose tracked products are
float32 too. Every --every steps the table gives the relative distance ||x - x_ref|| / ||x_ref|| over all
combined weights, and over every other parameter, of each copy to the reference. The gram form keeps to the
folded trajectory when its distance stays within the perturbed copy's.
"""

import argparse
import gzip
import math

import numpy as np
import torch
from torch.nn import functional as F

from lc_lightning.models import CifarResNet
from lc_lightning.nn import OwnSteps, combined_weight, lc_blocks

FASHION_MNIST = "/usr/share/datasets/fashion-mnist"


def fashion_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """The training split: images (60000, 1, 14, 14) normalised, labels (60000,)."""
    with gzip.open(f"{FASHION_MNIST}/train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(f"{FASHION_MNIST}/train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    images = F.avg_pool2d(torch.from_numpy(images.copy()).float().div_(255), 2)
    return (images - 0.2860) / 0.3530, torch.from_numpy(labels.copy()).long()


def networks(args: argparse.Namespace) -> dict[str, torch.nn.Module]:
    """The reference, the perturbed reference and the gram copy, from one seed."""
    built = {}
    for name, form in (("folded", "folded"), ("folded, perturbed 1e-7", "folded"), ("gram", "gram")):
        torch.manual_seed(0)
        built[name] = CifarResNet(10, 1, depth=8, width=args.width, expansion=args.expansion, lc_form=form)
    noise = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in built["folded, perturbed 1e-7"].parameters():
            parameter.mul_(1 + 1e-7 * torch.randn(parameter.shape, generator=noise))
    return built


def state(network: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """(all combined weights, every other parameter), each flattened into one float64 vector."""
    blocks = [combined_weight(conv).detach().double().flatten() for _, conv in lc_blocks(network)]
    others = [p.detach().double().flatten() for n, p in network.named_parameters() if ".parametrizations." not in n]
    return torch.cat(blocks), torch.cat(others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=15000)
    parser.add_argument("--every", type=int, default=1000)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--expansion", type=int, default=8)
    args = parser.parse_args()
    images, labels = fashion_mnist()
    built = networks(args)
    optimizers, own_steps = {}, {}
    for name, network in built.items():
        optimizer = torch.optim.SGD(network.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)
        optimizers[name] = optimizer
        own_steps[name] = OwnSteps(network, optimizer)
    print(f"ResNet-LC-8-{args.width}x{args.expansion}, learned spatial filters, float32, Fashion-MNIST batches of 64, "
          f"{args.steps} steps, torch {torch.__version__}\n")  # fmt: skip
    print("| step | " + " | ".join(f"{name}: LC weights | {name}: others" for name in list(built)[1:]) + " |")
    print("|---" * (1 + 2 * (len(built) - 1)) + "|")
    order = torch.Generator().manual_seed(2)
    permutation, position = torch.randperm(len(labels), generator=order), 0
    for step in range(1, args.steps + 1):
        if position + 64 > len(labels):
            permutation, position = torch.randperm(len(labels), generator=order), 0
        batch = permutation[position : position + 64]
        position += 64
        lr = 0.01 * 0.5 * (1 + math.cos(math.pi * (step - 1) / args.steps))
        for name, network in built.items():
            loss = F.cross_entropy(network(images[batch]), labels[batch], label_smoothing=0.1)
            optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            for group in optimizers[name].param_groups:
                group["lr"] = lr
            own_steps[name].take_gradients()
            optimizers[name].step()
        if step % args.every == 0 or step == args.steps:
            reference = state(built["folded"])
            cells = []
            for name in list(built)[1:]:
                distances = ((x - r).norm() / r.norm() for x, r in zip(state(built[name]), reference, strict=True))
                cells += [f"{distance.item():.2e}" for distance in distances]
            print(f"| {step} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
