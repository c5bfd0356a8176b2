"""GPU acceptance in one command: the CUDA tests, the throughput table and Table 1's Fashion-MNIST row.

    bash benchmarks/gather_gpu_files.sh          # once, where pip and Debian's Fashion-MNIST are
    python benchmarks/gpu_acceptance.py --out DIR [--work DIR] [--files .gpu] [--dry-run]

Parts, each in its own processes and stopped at its own time budget (PART_SECONDS; about 9
minutes in all on one H200), so that a slow part cannot take the others' time:
1. tests: ``pytest -m cuda tests/test_cuda.py``.
2. throughput: benchmarks/train_throughput.py on the GPU (bf16-mixed): the baseline, LC x8 and
   x128 frozen (folded and preconditioned) and x128 learnable (folded and gram) through both loaders; the 75-epoch
   time of ResNet-LC-20-16x128 frozen from 3 timed epochs; the cost of a host sync each step and
   of a progress bar drawn each step; compile on.
3. table1: the three Fashion-MNIST runs of Table 1 (configs/table1, the paper's recipe: 75 epochs,
   batch 256, seed 0) side by side on the one GPU, read from their run directories beside the
   paper's numbers.
DIR gets report.md and results.json, rewritten after every part, so a part that fails or runs
out of time leaves the others' figures. The run directories and logs go to --work (default
DIR/work). Wheels in --files/wheels (jsonargparse, which a bare GPU machine lacks) are installed
into --work first with pip --no-index; --files/fashion-mnist holds the dataset.
--dry-run runs every part on the CPU at tiny size (the CUDA tests on the CPU, a few steps, a few
hundred images) in under two minutes: the test suite runs it.
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PART_SECONDS = {"tests": 55, "throughput": 195, "table1": 270}
DRY_RUN_SECONDS = {"tests": 60, "throughput": 90, "table1": 60}
TABLE1_MODES = {"baseline": "baseline", "lc_learnable": "LC learnable", "lc_frozen": "LC frozen random"}
GOAL_MINUTES, GOAL_LOADER_SPEEDUP = 3.0, 3.0


def stop_group(process: subprocess.Popen) -> str:
    """Kill ``process`` and every process of its session (it was started with start_new_session)."""
    os.killpg(process.pid, 9)
    process.wait()
    return "stopped at its time budget"


def run_bounded(command: list[str], seconds: float, env: dict, log: Path | None) -> str:
    """Run ``command`` (its output into ``log``, or here if None) for at most ``seconds``: "done",
    "failed (exit N)" or "stopped at its time budget" (its whole process group killed)."""
    with open(log, "a") if log else contextlib.nullcontext() as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=out and subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
        try:
            code = process.wait(timeout=max(1.0, seconds))
        except subprocess.TimeoutExpired:
            return stop_group(process)
    return "done" if code == 0 else f"failed (exit {code})"


def part_tests(args, env: dict, seconds: float) -> dict:
    report = args.work / "cuda-tests.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-m",
        "cuda",
        "tests/test_cuda.py",
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
    ]
    if args.dry_run:  # compiling takes a cold CPU most of a minute; tests/test_fast_paths.py compiles on CPU
        command += ["-k", "not compile"]
    status = run_bounded(command, seconds, env, args.work / "tests.log")
    tests = []
    if report.is_file():
        for case in ElementTree.parse(report).iter("testcase"):
            outcome, message = "passed", ""
            for kind in ("failure", "error", "skipped"):
                found = case.find(kind)
                if found is not None:
                    outcome, message = kind, (found.get("message") or "").splitlines()[0][:200]
            tests.append({"name": case.get("name"), "outcome": outcome, "message": message})
    counts = {
        outcome: sum(t["outcome"] == outcome for t in tests) for outcome in ("passed", "failure", "error", "skipped")
    }
    summary = ", ".join(f"{n} {outcome}" for outcome, n in counts.items() if n)
    return {"status": f"{status}: {summary or 'no test ran'}", "tests": tests}


def throughput_runs(dry_run: bool) -> list[tuple[str, list[str]]]:
    """(what it measures, train_throughput.py arguments) in order of importance; LC x2 for x8 and x128
    in the dry run."""
    models = ["baseline", "lc2-frozen"] if dry_run else ["baseline", "lc8-frozen", "lc128-frozen", "lc128-learnable"]
    large = "lc2" if dry_run else "lc128"
    headline = ["--models", f"{large}-frozen", "--lc-forms", "preconditioned", "--loaders", "device"]
    forms = ["folded", "preconditioned", "gram"]
    runs = [
        ("table", ["--models", *models, "--lc-forms", *forms, "--loaders", "torch", "device"]),
        ("75 epochs", [*headline, "--epochs", "1" if dry_run else "3"]),
        ("host syncs", [*headline, "--sync-each-step", "on"]),
        ("host syncs", [*headline, "--progress-bar", "on", "every-step"]),
        ("compile", [*headline, "--compile", "on"]),
        ("compile", ["--models", "baseline", "--loaders", "device", "--compile", "on"]),
    ]
    # compiling takes minutes on a CPU; tests/test_fast_paths.py compiles on the CPU instead
    return [(what, run_args) for what, run_args in runs if what != "compile"] if dry_run else runs


RUN_THROUGHPUT = """
import json, os, sys
progress = os.fdopen(os.dup(1), "w")
with open(sys.argv[2], "a") as log:  # every process of the runs, forked ones too, writes there
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
from train_throughput import main
for what, argv in json.loads(sys.argv[1]):
    main(argv)
    print(f"finished: {what}", flush=True)
    print(f"  throughput, {what}: finished", file=progress, flush=True)
"""
"""Every train_throughput.py run of the part in one process, so that the libraries are imported once;
its output goes to the log given, a line of progress for each run here."""


def part_throughput(args, env: dict, seconds: float) -> dict:
    rows_file, log = args.work / "throughput.jsonl", args.work / "throughput.log"
    rows_file.unlink(missing_ok=True)
    log.unlink(missing_ok=True)
    if args.dry_run:
        size = "--device cpu --train-images 256 --val-images 64 --batch-size 32 --warmup 1 --steps 2 --workers 1"
        size = size.split()
    else:
        size = ["--device", "cuda", "--workers", str(max(1, (os.cpu_count() or 2) - 1))]
    runs = [(what, [*size, *run_args, "--json", str(rows_file)]) for what, run_args in throughput_runs(args.dry_run)]
    env = {**env, "PYTHONPATH": os.pathsep.join([str(REPO / "benchmarks"), env["PYTHONPATH"]])}
    status = run_bounded([sys.executable, "-c", RUN_THROUGHPUT, json.dumps(runs), str(log)], seconds, env, None)
    finished = [line for line in log.read_text().splitlines() if line.startswith("finished: ")]
    rows = [json.loads(line) for line in rows_file.read_text().splitlines()] if rows_file.is_file() else []
    failed = sum(row.get("failed", False) for row in rows)
    if status == "done":
        status = f"done: {len(rows)} rows" + (f", {failed} failed" if failed else "")
    else:
        status = f"{status} after {len(finished)} of {len(runs)} runs"
    return {"status": status, "rows": rows}


def part_table1(args, env: dict, seconds: float) -> dict:
    from lc_lightning.report.paper import paper_numbers
    from lc_lightning.run_directory import RunDirectory

    runs = args.work / "runs"
    common = [
        f"--trainer.logger.init_args.save_dir={runs}",
        f"--data.data_dir={args.files / 'fashion-mnist'}",
        "--data.download=false",
        "--trainer.enable_progress_bar=false",
    ]
    if args.dry_run:
        tiny = "--trainer.max_epochs=1 --data.train_subset=256 --data.val_subset=128 --data.batch_size=64"
        common += ["--config", "configs/trainer/cpu.yaml", *tiny.split(), "--data.num_workers=0"]
        env = {**env, "OMP_NUM_THREADS": "1"}  # three processes on a few cores: one thread each
    else:
        common += ["--config", "configs/trainer/gpu.yaml"]
    started = time.monotonic()
    processes, logs, ended = {}, [], {}
    for mode in TABLE1_MODES:
        logs.append(open(args.work / f"table1_{mode}.log", "w"))
        configs = ["--config", "configs/table1/base.yaml", "--config", f"configs/table1/fashion_mnist_{mode}.yaml"]
        command = [sys.executable, "-m", "lc_lightning.cli", "fit", *configs, *common]
        processes[mode] = subprocess.Popen(
            command, stdout=logs[-1], stderr=subprocess.STDOUT, env=env, cwd=REPO, start_new_session=True
        )
    while len(ended) < len(processes) and time.monotonic() < started + seconds:
        time.sleep(0.5)
        ended.update(
            {mode: time.monotonic() for mode, p in processes.items() if mode not in ended and p.poll() is not None}
        )
    results = []
    for mode, process in processes.items():
        if mode in ended:
            status = "done" if process.returncode == 0 else f"failed (exit {process.returncode})"
        else:
            status = stop_group(process)
        run = RunDirectory(runs / "table1" / f"fashion_mnist_{mode}" / "version_0")
        record = run.status() if run.exists() else None
        results.append(
            {
                "mode": TABLE1_MODES[mode],
                "status": status,
                "minutes": (ended.get(mode, time.monotonic()) - started) / 60,
                "paper": paper_numbers(run.config()).get("val/acc") if run.exists() else None,
                "epochs": None if record is None else record.epoch,
                "val_acc": None if record is None else record.metrics.get("val/acc"),
                "best_val_acc": None if record is None else record.best_val_acc,
            }
        )
    for log in logs:
        log.close()
    done = all(result["status"] == "done" for result in results)
    return {"status": "done" if done else "not every run finished", "runs": results}


def _cell(value, form: str = "{:.1f}") -> str:
    return "-" if value is None else form.format(value)


def _row_name(row: dict) -> str:
    name = "ResNet-20-16" if row["expansion"] is None else f"LC x{row['expansion']} {row['spatial']} {row['lc_form']}"
    return name if row["expansion"] is not None or row["spatial"] == "learnable" else f"{name} (frozen)"


def _measured(rows: list[dict], figure: str = "images_per_second", epochs: bool = False, **match) -> float | None:
    """``figure`` of the first row measured that matches ``match``: a row of timed epochs or of timed steps."""
    for row in rows:
        if not row.get("failed") and bool(row.get("epochs")) == epochs and all(row[k] == v for k, v in match.items()):
            return row[figure]
    return None


def goals(results: dict, large: int) -> list[tuple[str, str, str]]:
    """(figure, goal, measured) for the headline figures."""
    rows = results["parts"].get("throughput", {}).get("rows", [])
    headline = {"expansion": large, "spatial": "frozen", "lc_form": "preconditioned", "compile": False}
    plain = {"progress_bar": "off", "sync_each_step": False}
    minutes = _measured(rows, "paper_epochs_minutes", epochs=True, **headline, **plain, loader="device")
    device = _measured(rows, **headline, **plain, loader="device")
    torch_loader = _measured(rows, **headline, **plain, loader="torch")
    baseline = _measured(rows, expansion=None, spatial="learnable", loader="device", compile=False, **plain)
    folded = _measured(rows, **{**headline, "lc_form": "folded"}, **plain, loader="device")
    synced = _measured(rows, **headline, loader="device", progress_bar="off", sync_each_step=True)
    every_step = _measured(rows, **headline, loader="device", progress_bar="every-step", sync_each_step=False)
    ours = _measured(rows, **headline, loader="device", progress_bar="on", sync_each_step=False)

    def ratio(a, b):
        return None if a is None or b is None else a / b

    def cost(slow):
        return None if device is None or slow is None else 100 * (device / slow - 1)

    return [
        (
            f"75-epoch CIFAR-10 run, LC x{large} frozen (preconditioned, device loader)",
            f"< {GOAL_MINUTES:.0f} min",
            _cell(minutes, "{:.2f} min"),
        ),
        (
            "device loader / DataLoader, images/s (same model)",
            f">= {GOAL_LOADER_SPEEDUP:.0f}x",
            _cell(ratio(device, torch_loader), "{:.2f}x"),
        ),
        (f"LC x{large} frozen step time / baseline's: preconditioned", "-", _cell(ratio(baseline, device), "{:.2f}")),
        (f"LC x{large} frozen step time / baseline's: folded", "-", _cell(ratio(baseline, folded), "{:.2f}")),
        (
            "a host sync each step (what the old finite-loss check did)",
            "cost < 2 % or removed",
            _cell(cost(synced), "{:+.1f} %"),
        ),
        ("Lightning's progress bar drawn each step", "cost < 2 % or removed", _cell(cost(every_step), "{:+.1f} %")),
        ("lc-train's progress bar (drawn every 0.5 s)", "cost < 2 %", _cell(cost(ours), "{:+.1f} %")),
    ]


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["", f"| {' | '.join(header)} |", "|" + "---|" * len(header), *(f"| {' | '.join(r)} |" for r in rows)]


def tests_table(part: dict) -> list[str]:
    return _table(["test", "outcome", "message"], [[t["name"], t["outcome"], t["message"]] for t in part["tests"]])


def throughput_table(part: dict) -> list[str]:
    header = ["model", "loader", "compile", "progress bar", "sync each step", "epochs", "images/s", "peak [MiB]"]
    rows = []
    for row in part["rows"]:
        if row.get("failed"):
            figures = ["failed", "", ""]
        else:
            figures = [f"{row['images_per_second']:.0f}", f"{row['peak_mib']:.0f}"]
            figures.append(_cell(row.get("paper_epochs_minutes"), "{:.2f}"))
        settings = [row["loader"], "on" if row["compile"] else "off", row["progress_bar"]]
        settings += ["on" if row["sync_each_step"] else "off", str(row.get("epochs") or "-")]
        rows.append([_row_name(row), *settings, *figures])
    return _table([*header, "75 epochs [min]"], rows)


def table1_table(part: dict) -> list[str]:
    header = ["mode", "paper val/acc [%]", "ours, last [%]", "ours, best [%]", "epochs", "status", "minutes"]
    rows = []
    for run in part["runs"]:
        paper = "-" if run["paper"] is None else f"{run['paper'][0]:.2f} +- {run['paper'][1]:.2f}"
        last = None if run["val_acc"] is None else 100 * run["val_acc"]
        best = None if run["best_val_acc"] is None else 100 * run["best_val_acc"]
        figures = [_cell(last, "{:.2f}"), _cell(best, "{:.2f}"), _cell(run["epochs"], "{}")]
        rows.append([run["mode"], paper, *figures, run["status"], f"{run['minutes']:.1f}"])
    return _table(header, rows)


PART_TITLES = {"tests": "1. CUDA tests", "throughput": "2. Throughput", "table1": "3. Table 1, Fashion-MNIST"}
PART_TABLES = {
    "tests": ("tests", tests_table),
    "throughput": ("rows", throughput_table),
    "table1": ("runs", table1_table),
}


def write_report(args, results: dict) -> None:
    """Write OUT/results.json and OUT/report.md from what the parts run so far measured."""
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    dry_run = " (dry run on the CPU, tiny sizes: no figure here means anything)" if args.dry_run else ""
    lines = [f"# GPU acceptance{dry_run}", ""]
    lines.append(f"{results['machine']}; {results['versions']}; started {results['started']}, ")
    lines[-1] += f"{results['seconds']:.0f} s so far. `{results['command']}`"
    lines += _table(["figure", "goal", "measured"], [list(g) for g in goals(results, 2 if args.dry_run else 128)])
    for name, part in results["parts"].items():
        lines += ["", f"## {PART_TITLES[name]}", ""]
        lines.append(f"{part['status']}, {part['seconds']:.0f} s of its {part['budget']:.0f} s.")
        key, table = PART_TABLES[name]
        if part.get(key):
            lines += table(part)
        if part.get("error"):
            lines += ["", f"Error: {part['error']}"]
    (args.out / "report.md").write_text("\n".join(lines) + "\n")


def prepare(args) -> dict:
    """The environment of every part's processes, and this process's import path: this checkout
    importable, the carried wheels installed."""
    paths = [str(REPO)]
    wheels = sorted((args.files / "wheels").glob("*.whl"))
    if wheels:
        site = args.work / "site"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "-q",
                "--no-index",
                "--no-deps",
                "--no-compile",
                "--upgrade",
                "--target",
                str(site),
                *map(str, wheels),
            ],
            check=True,
        )
        paths.insert(0, str(site))
    sys.path[:0] = paths  # part_table1 reads the run directories with lc_lightning here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*paths, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    env["PYTHONUNBUFFERED"] = "1"
    if args.dry_run:
        env["LC_TEST_DEVICE"] = "cpu"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="where report.md and results.json go")
    parser.add_argument("--work", type=Path, default=None, help="run directories and logs (default: OUT/work)")
    parser.add_argument(
        "--files", type=Path, default=REPO / ".gpu", help="what gather_gpu_files.sh gathered (default: .gpu)"
    )
    parser.add_argument("--dry-run", action="store_true", help="every part on the CPU at tiny size")
    args = parser.parse_args()
    args.work = args.work or args.out / "work"
    if (args.work / "runs").exists():  # the report reads the runs it starts; a run directory is never reused
        parser.exit(
            2, f"gpu_acceptance.py: {args.work / 'runs'} holds an earlier acceptance's runs; give another --work\n"
        )
    needed = {
        "jsonargparse wheels": any((args.files / "wheels").glob("*.whl")) or importlib.util.find_spec("jsonargparse"),
        "Fashion-MNIST files": any((args.files / "fashion-mnist").glob("*-ubyte*")),
    }
    missing = [what for what, found in needed.items() if not found]
    if missing:
        parser.exit(
            2, f"gpu_acceptance.py: no {' or '.join(missing)} in {args.files}: run benchmarks/gather_gpu_files.sh\n"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    args.work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    env = prepare(args)
    import torch

    machine = torch.cuda.get_device_name() if torch.cuda.is_available() and not args.dry_run else platform.processor()
    results = {
        "machine": f"{machine or 'CPU'}, {os.cpu_count()} CPU cores",
        "versions": f"Python {platform.python_version()}, torch {torch.__version__}",
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "seconds": 0.0,
        "command": " ".join(["python", "benchmarks/gpu_acceptance.py", *sys.argv[1:]]),
        "parts": {},
    }
    budgets = DRY_RUN_SECONDS if args.dry_run else PART_SECONDS
    for name, run_part in (("tests", part_tests), ("throughput", part_throughput), ("table1", part_table1)):
        print(f"{name}: at most {budgets[name]} s", flush=True)
        part_started = time.monotonic()
        try:
            part = run_part(args, env, budgets[name])
        except Exception as error:  # the report keeps what the other parts measured
            part = {"status": "failed", "error": f"{type(error).__name__}: {error}"}
        part.update(seconds=time.monotonic() - part_started, budget=budgets[name])
        results["parts"][name] = part
        results["seconds"] = time.monotonic() - started
        write_report(args, results)
        print(f"{name}: {part['status']} in {part['seconds']:.0f} s", flush=True)
    print((args.out / "report.md").read_text())


if __name__ == "__main__":
    main()
