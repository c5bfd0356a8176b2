"""lc-sweep and lc-report end to end on real Fashion-MNIST runs: a 2 x 2 grid here and as a SLURM job
array on the local cluster (a killed task resumed alone), a report of a sweep with a failed and a missing run, and
a sweep on SLURM from a wheel installed outside the checkout."""

import contextlib
import io
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from helpers.runs import final_value
from helpers.slurm import wait_until

from lc_lightning.report.cli import main as lc_report
from lc_lightning.run_directory import RunDirectory
from lc_lightning.run_lock import holder
from lc_lightning.sweep.cli import main as lc_sweep

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent
GRID_AXES = ["--axis", "model.network.init_args.expansion=1,2", "--axis", "seed_everything=0,1"]
RUN_NAMES = [f"expansion={e},seed_everything={s}" for e in (1, 2) for s in (0, 1)]
METRICS = {  # report.md's column: the tag, its scale and decimals
    "val/acc [%]": ("val/acc", 100, 2), "FGSM acc [%]": ("val/fgsm_acc", 100, 2),
    "entropy first": ("filters/entropy_first", 1, 3), "entropy last": ("filters/entropy_last", 1, 3),
}  # fmt: skip


def quick_config(tmp_path: Path, train_images: int, epochs: int) -> Path:
    """A small ResNet-LC-8-8 on a Fashion-MNIST subset on CPU, logging the paper's measurements."""
    config = {
        "trainer": {"accelerator": "cpu", "max_epochs": epochs, "enable_progress_bar": False,
                    "callbacks": str(REPO / "configs" / "callbacks" / "analysis.yaml")},
        "model": {"network": {"class_path": "lc_lightning.models.CifarResNet", "init_args": {"depth": 8, "width": 8}},
                  "optimizer": {"init_args": {"lr": 0.1}}},
        "data": {"class_path": "lc_lightning.data.FashionMNISTDataModule",
                 "init_args": {"data_dir": FASHION_MNIST_DEBIAN, "train_subset": train_images, "val_subset": 256,
                               "batch_size": 64, "num_workers": 0, "loader": "device"}},
    }  # fmt: skip
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def command(capsys, name: str, *args: str) -> subprocess.CompletedProcess:
    """Run the console script ``name`` (lc-sweep, lc-report) with ``args`` in this process, by the function
    its entry point calls: its exit status and what it printed (not what the lc-train processes of a
    local sweep print). The wheel test below runs the installed scripts themselves."""
    try:
        {"lc-sweep": lc_sweep, "lc-report": lc_report}[name](list(args))
        returncode = 0
    except SystemExit as exit_info:
        returncode = 0 if exit_info.code is None else exit_info.code
    captured = capsys.readouterr()
    return subprocess.CompletedProcess([name, *args], returncode, captured.out, captured.err)


def in_environment(monkeypatch, env: dict[str, str]) -> None:
    """Make ``env`` this process's environment for the test, for what lc-sweep starts (sbatch, lc-train)."""
    for name in set(os.environ) - set(env):
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def markdown_table(text: str) -> list[dict[str, str]]:
    """The rows of the first Markdown table in ``text``, as {header: cell}."""
    lines = [line for line in text.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    return [dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True)) for line in lines[2:]]


def trained_here(stdout: str) -> list[str]:
    """The runs an lc-sweep trained, by what it printed ("lc-sweep: [i/n] <run>")."""
    return re.findall(r"^lc-sweep: \[\d+/\d+\] (\S+)$", stdout, re.MULTILINE)


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory) -> Path:
    """The 2 x 2 grid (expansion x seed), trained here by two lc-sweep started together (one in this process):
    each run by one of them."""
    tmp_path = tmp_path_factory.mktemp("local")
    config = quick_config(tmp_path, train_images=512, epochs=2)
    args = ["--config", str(config), *GRID_AXES, "--dir", str(tmp_path / "sweep")]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two runs at a time on two cores, none waiting for a thread
        other = subprocess.Popen(
            [str(BIN / "lc-sweep"), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            lc_sweep(args)  # exits if a run fails
    outputs = [(out.getvalue(), err.getvalue()), other.communicate(timeout=900)]
    assert other.returncode == 0, outputs
    first, second = (trained_here(out) for out, _ in outputs)
    assert sorted(first + second) == sorted(RUN_NAMES), outputs  # each run trained once, by one of them
    for (out, err), others in zip(outputs, (second, first), strict=True):
        for name in others:  # each sweep names the runs the other trained, as it found them
            name = re.escape(name)
            named = rf"^{name}: (in use by process \d+ .*|finished)$|\] {name}: finished meanwhile$|process: .*{name}"
            assert re.search(named, out + err, re.MULTILINE), (name, out, err)
    return tmp_path / "sweep"


@pytest.mark.slow
@needs_fashion_mnist
def test_a_local_grid_trains_every_run_once_and_the_report_aggregates_its_event_files(local_sweep, tmp_path, capsys):
    assert (local_sweep / "runs.txt").read_text().split() == RUN_NAMES
    assert all(RunDirectory(local_sweep / name).status().state == "finished" for name in RUN_NAMES)
    config = local_sweep.parent / "quick.yaml"
    again = command(capsys, "lc-sweep", "--config", str(config), *GRID_AXES, "--dir", str(local_sweep))
    assert again.returncode == 0 and "4 runs, 0 to train" in again.stdout
    assert all(len(list((local_sweep / name).glob("events.out.tfevents.*"))) == 1 for name in RUN_NAMES)

    report = command(capsys, "lc-report", str(local_sweep), "--out", str(tmp_path / "report"))
    assert report.returncode == 0, report.stderr
    rows = markdown_table((tmp_path / "report" / "report.md").read_text())
    assert len(rows) == 2
    for row in rows:
        runs = [local_sweep / f"expansion={row['expansion']},seed_everything={s}" for s in (0, 1)]
        assert row["runs"] == "2/2"
        for header, (tag, scale, decimals) in METRICS.items():
            values = [final_value(run, tag) * scale for run in runs]
            expected = f"{statistics.mean(values):.{decimals}f} ± {statistics.stdev(values):.{decimals}f}"
            assert row[header] == expected, (row, header)
    assert all(row["paper [%]"] == "—" for row in rows if "paper [%]" in row)  # the paper has no such runs
    plot = tmp_path / "report" / "val_acc.png"
    assert plot.read_bytes().startswith(b"\x89PNG") and plot.stat().st_size > 10_000


@pytest.mark.slow
@needs_fashion_mnist
def test_the_report_lists_a_failed_and_a_missing_run_and_reports_the_rest(tmp_path, capsys):
    config = quick_config(tmp_path, train_images=256, epochs=1)
    sweep_dir = tmp_path / "sweep"
    missing = RunDirectory(sweep_dir / "train_subset=128")
    missing.path.mkdir(parents=True)
    held = missing.hold("another lc-sweep")  # so this sweep leaves it alone: it never starts
    sweep = command(capsys, "lc-sweep", "--config", str(config), "--axis", "data.init_args.train_subset=256,0,128",
                    "--dir", str(sweep_dir))  # fmt: skip
    missing.let_go(held)
    assert sweep.returncode == 1 and "train_subset=0 failed" in sweep.stderr
    assert "train_subset=128: in use by process" in sweep.stdout
    report = command(capsys, "lc-report", str(sweep_dir))
    assert report.returncode == 0, report.stderr
    text = (sweep_dir / "report" / "report.md").read_text()
    rows = markdown_table(text)
    assert [(row["train_subset"], row["runs"]) for row in rows] == [("256", "1/1"), ("0", "0/1"), ("128", "0/1")]
    assert rows[0]["val/acc [%]"] == f"{final_value(sweep_dir / 'train_subset=256', 'val/acc') * 100:.2f}"
    assert rows[1]["val/acc [%]"] == rows[2]["val/acc [%]"] == "—"
    failed = next(line for line in text.splitlines() if "train_subset=0" in line and "failed" in line)
    assert "failed: InvalidArgumentError: train_subset must be >= 1, got 0 (" in failed
    assert any("train_subset=128" in line and "missing" in line for line in text.splitlines())


@pytest.mark.slow
@needs_fashion_mnist
def test_a_grid_as_a_slurm_array_resumes_only_a_killed_task_and_then_submits_nothing(
    slurm_cluster, tmp_path, monkeypatch, capsys
):
    # lc-train on the batch script's PATH; one thread per task, as the tasks share this machine's cores
    env = {**slurm_cluster.ddp_env(), "PATH": f"{BIN}:{slurm_cluster.env['PATH']}", "OMP_NUM_THREADS": "1"}
    in_environment(monkeypatch, env)
    config = quick_config(tmp_path, train_images=1024, epochs=3)
    sweep_dir = tmp_path / "sweep"
    arguments = ["--config", str(config), *GRID_AXES, "--dir", str(sweep_dir), "--slurm",
                 "--", "--gres=none", "--cpus-per-task=1", "--time=10"]  # fmt: skip

    def array_tasks(job: str) -> str:
        return slurm_cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%i").stdout.strip()

    first = command(capsys, "lc-sweep", *arguments)
    assert first.returncode == 0, first.stderr
    job = first.stdout.split("submitted job array ")[1].split()[0]
    victim = 3
    victim_dir = sweep_dir / RUN_NAMES[victim]
    wait_until(lambda: (victim_dir / "checkpoints" / "last.ckpt").exists(), 300, "the victim's first epoch ends")
    assert slurm_cluster.run("scancel", f"{job}_{victim}").returncode == 0
    wait_until(lambda: array_tasks(job) == "", 600, "the job array ends")
    statuses = [RunDirectory(sweep_dir / name).status() for name in RUN_NAMES]
    assert [status.state == "finished" for status in statuses] == [index != victim for index in range(4)], statuses
    stopped_at = torch.load(victim_dir / "checkpoints" / "last.ckpt", weights_only=False)["global_step"]
    others = {name: (sweep_dir / name / "checkpoints" / "last.ckpt").stat().st_mtime_ns for name in RUN_NAMES}
    del others[RUN_NAMES[victim]]

    second = command(capsys, "lc-sweep", *arguments)
    assert second.returncode == 0, second.stderr
    assert "4 runs, 1 to train" in second.stdout and f"{RUN_NAMES[victim]}: to resume" in second.stdout
    resume_job = second.stdout.split("submitted job array ")[1].split()[0]
    assert array_tasks(resume_job).split() in ([f"{resume_job}_{victim}"], [])  # that run alone
    wait_until(lambda: array_tasks(resume_job) == "", 300, "the resumed run ends")
    output = (sweep_dir / "slurm" / f"{resume_job}_{victim}.out").read_text()
    assert f"Restored all states from the checkpoint at {victim_dir / 'checkpoints' / 'last.ckpt'}" in output
    final = torch.load(victim_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert 0 < stopped_at < final["global_step"] == 3 * 1024 // 64
    assert RunDirectory(victim_dir).status().state == "finished"
    assert {name: (sweep_dir / name / "checkpoints" / "last.ckpt").stat().st_mtime_ns for name in others} == others

    third = command(capsys, "lc-sweep", *arguments)
    assert third.returncode == 0 and "4 runs, 0 to train" in third.stdout
    assert "submitted" not in third.stdout and not list((sweep_dir / "slurm").glob(f"{int(resume_job) + 1}_*"))


def test_runs_slurm_still_holds_are_not_submitted_again(slurm_cluster, tmp_path, monkeypatch, capsys):
    in_environment(monkeypatch, slurm_cluster.env)
    script = tmp_path / "wait.sbatch"  # array tasks that stay in the queue for the test's length
    script.write_text("#!/bin/bash\nsleep 300\n")
    arguments = ["--config", str(REPO / "configs" / "sweeps" / "base.yaml"), "--axis", "seed_everything=0,1,2",
                 "--dir", str(tmp_path / "sweep"), "--slurm", "--sbatch_script", str(script),
                 "--", "--gres=none", "--cpus-per-task=1", "--time=10"]  # fmt: skip
    first = command(capsys, "lc-sweep", *arguments)
    assert first.returncode == 0, first.stderr
    job = first.stdout.split("submitted job array ")[1].split()[0]
    try:
        again = command(capsys, "lc-sweep", *arguments)
        assert again.returncode == 0 and "3 runs, 0 to train" in again.stdout and "submitted" not in again.stdout
        for task in range(3):
            assert f"seed_everything={task}: queued or running in SLURM job {job}_{task}" in again.stdout
    finally:
        slurm_cluster.run("scancel", job)


@pytest.mark.slow
@needs_fashion_mnist
def test_a_wheel_installed_outside_the_checkout_runs_a_sweep_on_slurm(slurm_cluster, tmp_path):
    source = tmp_path / "source"  # what the wheel is built from, copied: building writes into the tree it builds
    shutil.copytree(REPO / "lc_lightning", source / "lc_lightning", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("lc_lightning-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert {"lc_lightning/slurm/sweep.sbatch", "lc_lightning/slurm/train.sbatch"} <= set(archive.namelist())
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    # lc-lightning's dependencies from this environment (a path, not its .pth files: not its editable lc_lightning)
    site = subprocess.run([str(venv / "bin" / "python"), "-c", "import site; print(site.getsitepackages()[0])"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    Path(site, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import lc_lightning; print(lc_lightning.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout  # fmt: skip
    assert where.startswith(site)

    env = {**slurm_cluster.ddp_env(), "PATH": f"{venv / 'bin'}:{slurm_cluster.env['PATH']}", "OMP_NUM_THREADS": "1"}
    config = tmp_path / "quick.yaml"
    quick = yaml.safe_load(quick_config(tmp_path, train_images=256, epochs=1).read_text())
    del quick["trainer"]["callbacks"]  # nothing from the checkout
    config.write_text(yaml.safe_dump(quick))
    arguments = ["--config", str(config), "--axis", "seed_everything=0,1", "--dir", str(tmp_path / "sweep"), "--slurm",
                 "--", "--gres=none", "--cpus-per-task=1", "--time=10"]  # fmt: skip
    sweep = subprocess.run([str(venv / "bin" / "lc-sweep"), *arguments], capture_output=True, text=True, env=env,
                           cwd=tmp_path, timeout=120)  # fmt: skip
    assert sweep.returncode == 0, sweep.stderr
    job = sweep.stdout.split("submitted job array ")[1].split()[0]
    wait_until(lambda: slurm_cluster.run("squeue", "-h", "-r", "-j", job, "-o", "%i").stdout.strip() == "", 300,
               "the job array ends")  # fmt: skip
    for seed in (0, 1):
        run = RunDirectory(tmp_path / "sweep" / f"seed_everything={seed}")
        output = (tmp_path / "sweep" / "slurm" / f"{job}_{seed}.out").read_text()
        assert run.status() is not None and run.status().state == "finished", output[-3000:]
        assert (run.checkpoint_dir / "last.ckpt").is_file()


@pytest.mark.slow
@needs_fashion_mnist
def test_sigterm_to_lc_sweep_alone_stops_its_lc_train_and_the_next_sweep_trains_each_unfinished_run_once(
    tmp_path, monkeypatch, capsys
):
    marker = tmp_path / "waiting"
    config = yaml.safe_load(quick_config(tmp_path, train_images=256, epochs=1).read_text())
    wait = {"class_path": "helpers.interruptions.WaitForSigtermAtStep", "init_args": {"step": 2, "marker": str(marker)}}
    config["trainer"]["callbacks"] = [wait]
    (tmp_path / "quick.yaml").write_text(yaml.safe_dump(config))
    sweep_dir = tmp_path / "sweep"
    arguments = ["--config", str(tmp_path / "quick.yaml"), "--axis", "seed_everything=0,1", "--dir", str(sweep_dir)]
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))  # helpers.interruptions, in every process
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    sweep = subprocess.Popen([BIN / "lc-sweep", *arguments], **pipes)
    wait_until(marker.exists, timeout=300, what="the first run to reach step 2")
    trainer = int(marker.read_text())
    assert holder(sweep_dir / "seed_everything=0").pid == trainer
    sweep.send_signal(signal.SIGTERM)  # to lc-sweep alone, as `kill <pid>` does
    out, err = sweep.communicate(timeout=120)
    assert sweep.returncode == 143
    assert (
        err.splitlines()[-1] == "lc-sweep: stopped by SIGTERM during seed_everything=0; run the same command to resume"
    )
    with pytest.raises(ProcessLookupError):
        os.kill(trainer, 0)  # lc-train stopped with it, no process left behind
    assert [holder(sweep_dir / f"seed_everything={seed}") for seed in (0, 1)] == [None, None]
    stopped = RunDirectory(sweep_dir / "seed_everything=0").status()
    assert (stopped.state, stopped.global_step) == ("interrupted", 3)  # it stops after the step it is in

    again = command(capsys, "lc-sweep", *arguments)  # here: its lc-train processes are two more
    assert again.returncode == 0, again.stderr
    assert trained_here(again.stdout) == ["seed_everything=0", "seed_everything=1"]
    for seed in (0, 1):
        status = RunDirectory(sweep_dir / f"seed_everything={seed}").status()
        assert (status.state, status.global_step) == ("finished", 4)
    earlier = RunDirectory(sweep_dir / "seed_everything=0" / "attempt_0").status()  # stopped before its checkpoint
    assert (earlier.state, earlier.global_step) == ("interrupted", 3)
