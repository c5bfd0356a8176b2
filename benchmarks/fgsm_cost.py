"""The cost of FGSMAccuracy: FGSM over a validation set vs a training pass over the same images.

    python benchmarks/fgsm_cost.py [--device cpu|cuda] [--images 2048] [--batch-size 256] [--expansion 8]

ResNet-LC-20-16xE (frozen spatial filters, eval mode for validation) on random CIFAR-shaped
images. Times, each over all images and the median of --repeats runs: the clean validation
forward pass; what FGSMAccuracy adds (``fgsm_robust``: clean forward, attack forward-backward,
forward on the attacked images); a training pass (forward, backward, SGD step). Prints a table.
"""

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from lc_lightning.analysis import fgsm_robust
from lc_lightning.models import CifarResNet
from lc_lightning.nn import spatial_weights


def timed(function, device: torch.device, repeats: int) -> float:
    """Median seconds of ``function()`` over ``repeats`` runs after one warm-up run."""
    times = []
    for _ in range(repeats + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--images", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--expansion", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = CifarResNet(10, 3, expansion=args.expansion).to(device)
    for weight in spatial_weights(model).values():
        weight.requires_grad_(False)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01, momentum=0.9)
    batches = [
        (torch.rand(args.batch_size, 3, 32, 32, device=device), torch.randint(0, 10, (args.batch_size,), device=device))
        for _ in range(args.images // args.batch_size)
    ]

    def validate() -> None:
        model.eval()
        with torch.inference_mode():
            for images, _ in batches:
                model(images)

    def attack() -> None:
        model.eval()
        with torch.inference_mode():
            for images, targets in batches:
                fgsm_robust(model, images, targets, 1 / 255)

    def train() -> None:
        model.train()
        for images, targets in batches:
            optimizer.zero_grad(set_to_none=True)
            F.cross_entropy(model(images), targets).backward()
            optimizer.step()

    seconds = {
        name: timed(run, device, args.repeats)
        for name, run in (("validate", validate), ("fgsm", attack), ("train", train))
    }
    images = len(batches) * args.batch_size
    print(f"ResNet-LC-20-16x{args.expansion} frozen, {images} images, batch {args.batch_size}, {device}")
    print("| pass over the images | seconds | x validation | x training pass |")
    print("|---|---|---|---|")
    labels = {
        "validate": "validation (forward)",
        "fgsm": "FGSMAccuracy (fgsm_robust)",
        "train": "training (forward, backward, step)",
    }
    for name, label in labels.items():
        ratios = seconds[name] / seconds["validate"], seconds[name] / seconds["train"]
        print(f"| {label} | {seconds[name]:.2f} | {ratios[0]:.2f} | {ratios[1]:.2f} |")


if __name__ == "__main__":
    main()
