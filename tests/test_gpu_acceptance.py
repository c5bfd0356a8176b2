"""benchmarks/gpu_acceptance.py --dry-run: every part of the GPU acceptance, on the CPU at tiny size,
from the files that benchmarks/gather_gpu_files.sh gathers, so the command is known to work before
a GPU slot."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.data import needs_fashion_mnist

REPO = Path(__file__).resolve().parent.parent

PAPER_TABLE1 = {"baseline": [93.50, 0.15], "LC learnable": [93.25, 0.14], "LC frozen random": [93.65, 0.11]}


def model_name(row: dict) -> str:
    return "baseline" if row["expansion"] is None else f"lc{row['expansion']}-{row['spatial']}-{row['lc_form']}"


@pytest.mark.slow
@needs_fashion_mnist
def test_the_dry_run_runs_every_part_from_the_gathered_files(tmp_path):
    files, out = tmp_path / "gpu", tmp_path / "out"
    subprocess.run(["bash", "benchmarks/gather_gpu_files.sh", str(files)], cwd=REPO, check=True, capture_output=True)
    assert {path.name.split("-")[0] for path in (files / "wheels").glob("*.whl")} >= {"jsonargparse"}
    command = [sys.executable, "benchmarks/gpu_acceptance.py", "--dry-run", "--out", str(out), "--files", str(files)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (out / "work" / "site" / "jsonargparse").is_dir()  # installed from the gathered wheel
    results = json.loads((out / "results.json").read_text())
    parts = results["parts"]

    tests = parts["tests"]["tests"]
    assert parts["tests"]["status"] == f"done: {len(tests)} passed" and len(tests) >= 8, parts["tests"]
    assert any("device_loader" in test["name"] for test in tests)

    rows = parts["throughput"]["rows"]
    assert parts["throughput"]["status"] == f"done: {len(rows)} rows" and not any(row.get("failed") for row in rows)
    table = {(model_name(row), row["loader"]) for row in rows if not row["epochs"]}
    for model in ("baseline", "lc2-frozen-folded", "lc2-frozen-preconditioned"):
        assert {(model, "torch"), (model, "device")} <= table, model
    assert [row["paper_epochs_minutes"] > 0 for row in rows if row["epochs"]] == [True]
    assert {row["progress_bar"] for row in rows} == {"off", "on", "every-step"}
    assert any(row["sync_each_step"] for row in rows)

    runs = parts["table1"]["runs"]
    assert {run["mode"]: run["paper"] for run in runs} == PAPER_TABLE1
    for run in runs:
        assert run["status"] == "done" and run["epochs"] == 1 and 0 <= run["val_acc"] <= 1, run
    assert sorted(path.parent.parent.name for path in (out / "work" / "runs").rglob("version_0/config.yaml")) == [
        "fashion_mnist_baseline",
        "fashion_mnist_lc_frozen",
        "fashion_mnist_lc_learnable",
    ]

    report = (out / "report.md").read_text()
    again = subprocess.run(command, cwd=REPO, capture_output=True, text=True)  # its runs are a record: never reused
    assert again.returncode == 2 and "holds an earlier acceptance's runs; give another --work" in again.stderr
    assert (out / "report.md").read_text() == report
    elsewhere = [*command[:-1], str(tmp_path / "none")]  # --files with nothing gathered
    lacking = subprocess.run([*elsewhere, "--work", str(tmp_path / "other")], cwd=REPO, capture_output=True, text=True)
    assert lacking.returncode == 2 and f"no Fashion-MNIST files in {tmp_path / 'none'}" in lacking.stderr
    for line in ("| 75-epoch CIFAR-10 run, LC x2 frozen", "## 1. CUDA tests", "## 2. Throughput", "| LC frozen random"):
        assert line in report, line
    headline = [line for line in report.split("## 1.")[0].splitlines() if line.startswith("| ")][1:]
    assert len(headline) == 7 and all(line.split("|")[-2].strip() != "-" for line in headline), headline
