"""Training throughput of ResNet-20-16 and ResNet-LC-20-16xE on CIFAR-10-sized data: the
torchvision DataLoader vs the device loader, with and without the fast paths.

    python benchmarks/train_throughput.py [--device cpu|cuda] [--models baseline lc8-frozen ...]
        [--lc-forms folded preconditioned gram] [--loaders torch device] [--compile off on]
        [--channels-last off on] [--cudnn-benchmark off on] [--progress-bar off on every-step]
        [--sync-each-step off on] [--workers N] [--steps 20] [--epochs 0] [--json FILE] [--imagenet]

Every row is a real Lightning fit in its own process: ImageClassifier with the paper's recipe
(SGD, cosine schedule, label smoothing) on CIFAR10DataModule with 50,000 random uint8 32x32 RGB
training images (CIFAR-10's size and format, so the throughput is CIFAR-10's; --train-images)
and its augmentation (random crop with padding 4, flips), through ``loader: torch`` (DataLoader
workers) or ``loader: device``; precision fp32 on CPU, bf16-mixed on CUDA (``--precision``).
A model is ``baseline`` (ResNet-20-16), ``baseline-frozen`` (its spatial filters frozen),
``lc<E>-frozen`` or ``lc<E>-learnable`` (ResNet-LC-20-16xE); the LC rows come in every form of
--lc-forms that applies (preconditioned needs frozen filters, gram learned ones). After --warmup steps, --steps
steps are timed, loading included (synchronised on CUDA): images/s = steps x batch / seconds.
With --epochs N (N >= 1) each row instead times N whole epochs with validation on 10,000
images (--val-images) after each, and states the time of the paper's 75 epochs from them.
Peak memory: torch.cuda.max_memory_allocated over the timed steps on CUDA; on CPU the growth of
the process's peak resident memory over its memory before training (the dataset included).

The host-device syncs of the training loop: ``--progress-bar on`` shows lc-train's progress bar
(redrawn at most every ``ProgressBar.refresh_seconds``), ``every-step`` Lightning's, redrawn
(and so waiting for the device) every step; ``--sync-each-step on`` adds one
``torch.cuda.synchronize()`` after every step, what any per-step read of a device value costs.

--imagenet adds the ImageNet-scale rows: one training step (forward, backward, SGD) of timm's
ResNet-18d with LC-Blocks x128 (--imagenet-expansion), every weight learned, on 224x224 images, folded vs explicit, at
--imagenet-batch or, where that does not fit, the largest power-of-two batch below it that does.
"""

import argparse
import contextlib
import itertools
import json
import logging
import multiprocessing
import os
import re
import resource
import time
import warnings
from functools import partial

import numpy as np
import torch
from lightning import Callback, Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from PIL import Image
from torch.nn import functional as F
from torch.utils.data import Dataset

from lc_lightning.callbacks import ProgressBar
from lc_lightning.data import CIFAR10DataModule
from lc_lightning.models import CifarResNet, TimmNet
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import LC_FORMS, set_lc_form
from lc_lightning.nn.forms import FORMS

PAPER_EPOCHS = 75
MODEL = re.compile(r"baseline(-frozen)?|lc([1-9][0-9]*)-(frozen|learnable)")
PRELOAD = ["lightning", "torchvision", "timm", "lc_lightning.module", "lc_lightning.data", "lc_lightning.models"]
"""Imported once by the forkserver that every row's process is forked from, not again per row."""


class RandomImages(Dataset):
    """``size`` random uint8 32x32 RGB images with labels, read like torchvision's CIFAR10:
    each image becomes a PIL image and goes through ``transform``."""

    def __init__(self, size: int, transform, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.data = rng.integers(0, 256, size=(size, 32, 32, 3), dtype=np.uint8)
        self.targets = rng.integers(0, 10, size=size).tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        return self.transform(Image.fromarray(self.data[index])), self.targets[index]


class RandomCIFAR10(CIFAR10DataModule):
    """CIFAR10DataModule (both loaders, CIFAR-10's augmentation) over RandomImages of the given sizes."""

    def __init__(self, train_images: int, val_images: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes = {True: train_images, False: val_images}

    def make_dataset(self, train: bool, transform):
        return RandomImages(self.sizes[train], transform, seed=0 if train else 1)


class Timer(Callback):
    """Times training steps warmup+1 .. warmup+steps (loading included), or, with ``epochs``,
    the first ``epochs`` whole epochs with their validation."""

    def __init__(self, warmup: int, steps: int, epochs: int) -> None:
        self.warmup, self.steps, self.epochs = warmup, steps, epochs
        self.start = self.seconds = None
        self.memory_before = 0

    def _now(self, trainer) -> float:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter()

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        else:
            self.memory_before = _rss_bytes()
        if self.epochs:
            self.start = self._now(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.epochs:
            return
        if trainer.global_step == self.warmup:
            self.start = self._now(trainer)
        elif trainer.global_step == self.warmup + self.steps:
            self.seconds = self._now(trainer) - self.start
            trainer.should_stop = True

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.epochs and trainer.current_epoch == self.epochs - 1 and not trainer.sanity_checking:
            self.seconds = self._now(trainer) - self.start


class SyncEachStep(Callback):
    """Waits for the device after every training step, as any per-step read of a device value does."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * resource.getpagesize()


def _peak_mib(device: torch.device, memory_before: int) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - memory_before) / 2**20


def measure_cifar(row: dict, args: argparse.Namespace, results) -> None:
    """Fit one row's configuration in this (child) process; put (images/s, seconds, peak MiB)."""
    torch.backends.cudnn.benchmark = row["cudnn_benchmark"]
    network = partial(CifarResNet, depth=20, width=16, expansion=row["expansion"], lc_form=row["lc_form"])
    model = ImageClassifier(
        network, 10, 3, RandomCIFAR10.mean, RandomCIFAR10.std, freeze_spatial=row["spatial"] == "frozen",
        channels_last=row["channels_last"], compile=row["compile"],
    )  # fmt: skip
    data = RandomCIFAR10(
        args.train_images, args.val_images, batch_size=args.batch_size, num_workers=args.workers, loader=row["loader"]
    )
    timer = Timer(args.warmup, args.steps, args.epochs)
    callbacks = [timer]
    if row["progress_bar"] != "off":
        callbacks.append(ProgressBar() if row["progress_bar"] == "on" else TQDMProgressBar(refresh_rate=1))
    if row["sync_each_step"]:
        callbacks.append(SyncEachStep())
    trainer = Trainer(
        accelerator=args.device, devices=1, precision=args.precision, benchmark=row["cudnn_benchmark"],
        max_epochs=args.epochs or 1, max_steps=-1 if args.epochs else args.warmup + args.steps,
        limit_val_batches=1.0 if args.epochs else 0, num_sanity_val_steps=0, logger=False,
        enable_checkpointing=False, enable_progress_bar=row["progress_bar"] != "off", enable_model_summary=False,
        callbacks=callbacks,
    )  # fmt: skip
    trainer.fit(model, data)
    images = (args.epochs * args.train_images) if args.epochs else args.steps * args.batch_size
    results.put((images / timer.seconds, timer.seconds, _peak_mib(trainer.strategy.root_device, timer.memory_before)))


def measure_imagenet(row: dict, args: argparse.Namespace, results) -> None:
    """One ImageNet-scale training step per try, halving the batch until it fits; put (batch, ms, peak MiB)."""
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = TimmNet(1000, 3, name="resnet18d", expansion=args.imagenet_expansion).to(device)
    set_lc_form(model, row["path"])
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)
    batch = args.imagenet_batch
    while batch >= 1:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()  # a failed larger try must not count
        try:
            images = torch.rand(batch, 3, 224, 224, device=device)
            labels = torch.randint(0, 1000, (batch,), device=device)
            memory_before = torch.cuda.memory_allocated() if device.type == "cuda" else _rss_bytes()
            times = []
            for _ in range(args.imagenet_steps + 1):
                start = time.perf_counter()
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16-mixed"):
                    loss = F.cross_entropy(model(images), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            results.put((batch, 1000 * sorted(times[1:])[len(times[1:]) // 2], _peak_mib(device, memory_before)))
            return
        except torch.OutOfMemoryError:
            images = labels = loss = None  # free what the failed try holds
            optimizer.zero_grad(set_to_none=True)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            batch //= 2
    results.put((0, float("nan"), float("nan")))


def quietly(target, row: dict, args: argparse.Namespace, results) -> None:
    """``target(row, args, results)`` without Lightning's messages, warnings and progress bar, so that the
    table stands out."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the progress bar, if any
        target(row, args, results)


def in_child(target, row: dict, args: argparse.Namespace):
    """Run ``target(row, args, queue)`` in a fresh process; its result, or None if it failed."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(PRELOAD)
    results = context.Queue()
    process = context.Process(target=quietly, args=(target, row, args, results))
    process.start()
    process.join()
    return results.get() if process.exitcode == 0 else None


def model_spec(name: str) -> tuple[int | None, str]:
    """(expansion or None for the baseline, "frozen" or "learnable") of a --models name."""
    match = MODEL.fullmatch(name)
    if match is None:
        choices = "baseline, baseline-frozen, lc<E>-frozen, lc<E>-learnable"
        raise argparse.ArgumentTypeError(f"{name!r} is none of {choices}")
    if match.group(2) is None:
        return None, "frozen" if match.group(1) else "learnable"
    return int(match.group(2)), match.group(3)


def cifar_rows(args: argparse.Namespace) -> list[dict]:
    """Every row the arguments ask for: each model in each form that applies, times every option."""
    models = []
    for expansion, spatial in args.models:
        forms = [None] if expansion is None else args.lc_forms
        kind = "frozen" if spatial == "frozen" else "learned"
        forms = [form for form in forms if form is None or FORMS[form].spatial_filters in (None, kind)]
        models += [(expansion, spatial, form) for form in forms]
    on = {"off": False, "on": True}
    options = itertools.product(
        args.loaders, args.compile, args.channels_last, args.cudnn_benchmark, args.progress_bar, args.sync_each_step
    )
    return [
        {"expansion": expansion, "spatial": spatial, "lc_form": form or "folded", "loader": loader,
         "compile": on[compiled], "channels_last": on[channels_last], "cudnn_benchmark": on[benchmark],
         "progress_bar": bar, "sync_each_step": on[sync]}
        for (expansion, spatial, form), (loader, compiled, channels_last, benchmark, bar, sync)
        in itertools.product(models, options)
    ]  # fmt: skip


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--precision", default=None, help="default: bf16-mixed on cuda, 32-true on cpu")
    parser.add_argument("--batch-size", type=int, default=128, help="the paper's CIFAR batch")
    parser.add_argument(
        "--models", type=model_spec, nargs="+", default=[model_spec(name) for name in
        ("baseline", "lc8-frozen", "lc128-frozen", "lc128-learnable")],
        help="baseline, baseline-frozen, lc<E>-frozen, lc<E>-learnable (default: baseline lc8-frozen lc128-frozen "
        "lc128-learnable)",
    )  # fmt: skip
    parser.add_argument("--lc-forms", nargs="+", choices=LC_FORMS, default=["folded", "preconditioned", "gram"])
    parser.add_argument("--loaders", nargs="+", choices=("torch", "device"), default=["torch", "device"])
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the DataModule's)")
    for option, default in (("compile", "off"), ("channels-last", "on"), ("cudnn-benchmark", "off")):  # lc-train's
        parser.add_argument(f"--{option}", nargs="+", choices=("off", "on"), default=[default])
    parser.add_argument("--progress-bar", nargs="+", choices=("off", "on", "every-step"), default=["off"])
    parser.add_argument("--sync-each-step", nargs="+", choices=("off", "on"), default=["off"])
    parser.add_argument("--train-images", type=int, default=50_000, help="CIFAR-10's")
    parser.add_argument("--val-images", type=int, default=10_000, help="CIFAR-10's")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation, autotuning)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per row")
    parser.add_argument("--epochs", type=int, default=0, help="time this many whole epochs instead of --steps")
    parser.add_argument("--json", default=None, help="also append every row, with its figures, to this file as JSON")
    parser.add_argument("--imagenet", action="store_true", help="also the ImageNet-scale ResNet-18d rows")
    parser.add_argument("--imagenet-batch", type=int, default=256)
    parser.add_argument("--imagenet-steps", type=int, default=3)
    parser.add_argument("--imagenet-expansion", type=int, default=128)
    args = parser.parse_args(argv)
    args.precision = args.precision or ("bf16-mixed" if args.device == "cuda" else "32-true")
    return args


def _record(args: argparse.Namespace, row: dict) -> None:
    if args.json:
        with open(args.json, "a") as out:
            out.write(json.dumps(row) + "\n")


def main(argv: list[str] | None = None) -> None:
    """Measure and print the rows that ``argv`` (default: the command line) asks for."""
    args = parse_args(argv)
    name = torch.cuda.get_device_name() if args.device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    workers = args.workers if args.workers is not None else max(1, (os.cpu_count() or 2) - 1)
    timed = f"{args.epochs} epochs" if args.epochs else f"{args.steps} steps after {args.warmup}"
    print(f"{name}, torch {torch.__version__}, {args.precision}, batch {args.batch_size}, DataLoader workers "
          f"{workers}, {timed}\n")  # fmt: skip
    header = (
        "| model | E | spatial | form | loader | compile | channels_last | cudnn.benchmark | progress bar "
        "| sync each step | images/s | peak [MiB] |"
    )
    if args.epochs:
        header += f" epoch [s] | {PAPER_EPOCHS} epochs [min] |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for row in cifar_rows(args):
        model = "ResNet-20-16" if row["expansion"] is None else "ResNet-LC-20-16"
        form = "-" if row["expansion"] is None else row["lc_form"]
        flags = " | ".join("on" if row[key] else "off" for key in ("compile", "channels_last", "cudnn_benchmark"))
        label = (
            f"| {model} | {row['expansion'] or '-'} | {row['spatial']} | {form} | {row['loader']} | {flags} "
            f"| {row['progress_bar']} | {'on' if row['sync_each_step'] else 'off'} |"
        )
        result = in_child(measure_cifar, row, args)
        if result is None:
            print(f"{label} failed | |", flush=True)
            _record(args, {**row, "failed": True})
            continue
        images_per_second, seconds, mib = result
        line = f"{label} {images_per_second:.0f} | {mib:.0f} |"
        figures = {"images_per_second": images_per_second, "peak_mib": mib, "seconds": seconds}
        if args.epochs:
            epoch = seconds / args.epochs
            line += f" {epoch:.1f} | {epoch * PAPER_EPOCHS / 60:.1f} |"
            figures["paper_epochs_minutes"] = epoch * PAPER_EPOCHS / 60
        print(line, flush=True)
        _record(args, {**row, **figures, "epochs": args.epochs, "batch_size": args.batch_size, "device": name})
    if args.imagenet:
        print(f"\nResNet-18d LC x{args.imagenet_expansion}, every weight learned, 224x224, one training step, "
              f"{args.precision}\n")  # fmt: skip
        print("| path | batch | step [ms] | peak [MiB] |\n|---|---|---|---|")
        for path in ("folded", "explicit"):
            result = in_child(measure_imagenet, {"path": path}, args)
            if result is None or result[0] == 0:
                print(f"| {path} | does not fit at batch 1 | | |", flush=True)
                continue
            batch, ms, mib = result
            print(f"| {path} | {batch} | {ms:.0f} | {mib:.0f} |", flush=True)


if __name__ == "__main__":
    main()
