"""Training-step time, memory and build time of ResNet-LC-20-16xE in each LC-Block form, against the baseline.

    python benchmarks/lc_block.py [--device cpu|cuda] [--batch-size 128] [--expansions 1 8 128 1024 8192]

Each configuration runs in its own process (fresh allocator, own peak memory): the network is
built on the device (timed: "build [s]", drawing every spatial filter and, for the forms that
hold W, building their products there), then one warm-up step and one timed
step (forward + backward + SGD step), over which "peak [MiB]" is taken: the growth of the
process's peak resident memory over its memory before the first step on CPU,
torch.cuda.max_memory_allocated on CUDA (activations, gradients, optimizer state). Then the
plain ResNet-20-16 with every weight learned is built in the same process and the two step in
turn until --min-seconds have passed (at most --max-steps): "step [ms]" is the median of the
row's steps, "x baseline" its ratio to the median of the baseline's, measured alongside it, so
a shared or throttling machine slows both alike. "held [MiB]" is the network's parameters and
buffers (and what the preconditioned and gram forms track as extra state).
Folded rows run up to --folded-up-to, explicit rows up to --explicit-up-to (S and the E maps
per output channel grow with E); preconditioned rows (frozen spatial filters only) and gram rows
(learned ones only) at every E.
"""

import argparse
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable

import torch
from torch.nn import functional as F

from lc_lightning.callbacks import FreezeSpatialConvs
from lc_lightning.models import CifarResNet
from lc_lightning.nn import OwnSteps, combined_weight, lc_blocks
from lc_lightning.nn.forms import FORMS

PATHS = ("baseline", "preconditioned", "gram", "folded", "explicit")


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def training_step(config: dict, args: argparse.Namespace) -> tuple[Callable[[], None], torch.nn.Module, float]:
    """(a training step of the row's network, the network, its build time in seconds), seeded."""
    torch.manual_seed(0)
    device = torch.device(args.device)
    form = "folded" if config["expansion"] is None else config["path"]
    start = time.perf_counter()
    model = CifarResNet(10, 3, expansion=config["expansion"], lc_form=form).to(device)
    for _, conv in lc_blocks(model):
        combined_weight(conv)  # builds a block that holds W
    if device.type == "cuda":
        torch.cuda.synchronize()
    build_seconds = time.perf_counter() - start
    if config["spatial"] == "frozen":
        for weight in FreezeSpatialConvs.frozen_weights(model).values():
            weight.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.01)
    own_steps = OwnSteps(model, optimizer)
    images = torch.rand(args.batch_size, 3, 32, 32, device=device)
    labels = torch.randint(0, 10, (args.batch_size,), device=device)

    def step() -> None:
        loss = F.cross_entropy(model(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        own_steps.take_gradients()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    return step, model, build_seconds


def _held_tensors(model: torch.nn.Module):
    """The network's parameters, buffers and the tensors of its modules' extra states."""
    yield from model.parameters()
    yield from model.buffers()
    for module in model.modules():
        if type(module).get_extra_state is not torch.nn.Module.get_extra_state:
            yield from (value for value in module.get_extra_state().values() if isinstance(value, torch.Tensor))


def timed(step: Callable[[], None]) -> float:
    start = time.perf_counter()
    step()
    return time.perf_counter() - start


def measure(config: dict, args: argparse.Namespace, results) -> None:
    """Run one row in this (child) process; put (ms per step, x baseline, peak MiB, held MiB, build s) in results.

    The peak is taken over the row's own first steps; then the learnable baseline is built and
    the two networks step in turn, so that "x baseline" compares them under the same conditions."""
    device = torch.device(args.device)
    step, model, build_seconds = training_step(config, args)
    held = sum(t.numel() * t.element_size() for t in _held_tensors(model))
    memory_before = torch.cuda.memory_allocated() if device.type == "cuda" else _rss_bytes()
    times = [timed(step) for _ in range(2)][1:]  # the first one warms up
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() - memory_before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - memory_before
    baseline_step, _, _ = training_step({"expansion": None, "path": "baseline", "spatial": "learnable"}, args)
    baseline_step()
    baseline_times = []
    while sum(times) < args.min_seconds and len(times) < args.max_steps:
        baseline_times.append(timed(baseline_step))
        times.append(timed(step))
    baseline_times.append(timed(baseline_step))
    ms, baseline_ms = (1000 * statistics.median(t) for t in (times, baseline_times))
    results.put((ms, ms / baseline_ms, peak / 2**20, held / 2**20, build_seconds))


def configurations(args: argparse.Namespace) -> list[dict]:
    """The rows to measure: the baseline first, then by E each form's rows that fit."""
    up_to = {"folded": args.folded_up_to, "explicit": args.explicit_up_to}
    rows = [{"expansion": None, "path": "baseline", "spatial": spatial} for spatial in ("learnable", "frozen")]
    for expansion in args.expansions:
        for path in PATHS[1:]:
            for spatial in ("frozen", "learnable"):
                exact = FORMS[path].spatial_filters in (None, "frozen" if spatial == "frozen" else "learned")
                if exact and path in args.paths and expansion <= up_to.get(path, expansion):
                    rows.append({"expansion": expansion, "path": path, "spatial": spatial})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--expansions", type=int, nargs="+", default=[1, 8, 128, 1024, 8192])
    parser.add_argument("--folded-up-to", type=int, default=1024, help="the largest E of the folded rows")
    parser.add_argument("--explicit-up-to", type=int, default=128, help="the largest E of the explicit rows")
    parser.add_argument("--min-seconds", type=float, default=10.0, help="time at least this long per configuration")
    parser.add_argument("--max-steps", type=int, default=20)
    parser.add_argument(
        "--paths", nargs="+", choices=PATHS[1:], default=list(PATHS[1:]), help="which forms (after the baseline rows)"
    )
    args = parser.parse_args()
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"ResNet-LC-20-16xE training step, batch {args.batch_size}, fp32, {name}, torch {torch.__version__}\n")
    print("| model | E | form | spatial | build [s] | held [MiB] | step [ms] | x baseline | peak [MiB] |")
    print("|---|---|---|---|---|---|---|---|---|")
    context = multiprocessing.get_context("spawn")
    for config in configurations(args):
        results = context.Queue()
        process = context.Process(target=measure, args=(config, args, results))
        process.start()
        process.join()
        model = "ResNet-20-16" if config["expansion"] is None else "ResNet-LC-20-16"
        label = f"| {model} | {config['expansion'] or '-'} | {config['path']} | {config['spatial']} |"
        if process.exitcode != 0:
            print(f"{label} failed (exit {process.exitcode}, e.g. out of memory) | | | | |", flush=True)
            continue
        ms, ratio, peak, held, build = results.get()
        print(f"{label} {build:.2f} | {held:.1f} | {ms:.1f} | {ratio:.2f} | {peak:.0f} |", flush=True)


if __name__ == "__main__":
    main()
