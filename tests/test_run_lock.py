"""A run directory is held by one live process (lc_lightning.run_lock): others are refused with its name, a
holder that died is taken over with a line that says so, and a "running" status without a holder reads as died."""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest
from helpers.cli import lc_train, tiny_cifar_args

from lc_lightning.errors import InvalidArgumentError, RunHeldError
from lc_lightning.run_directory import RunDirectory, RunStatus
from lc_lightning.run_lock import holder, last_holder

HOLD = textwrap.dedent("""
    import os, subprocess, sys, time
    from pathlib import Path
    from lc_lightning.run_directory import RunDirectory
    lock = RunDirectory(Path(sys.argv[1])).hold(sys.argv[2])
    if len(sys.argv) > 3:  # hand the lock to a child, as lc-sweep does to lc-train
        child = subprocess.Popen([sys.executable, "-c", sys.argv[3], sys.argv[1]], pass_fds=(lock.descriptor,),
                                 env={**os.environ, **lock.inheritable_environment()}, stdout=subprocess.PIPE)
        print(child.stdout.readline().decode().strip(), flush=True)
    else:
        print(os.getpid(), flush=True)
    time.sleep(600)
""")
ADOPT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from lc_lightning.run_directory import RunDirectory
    RunDirectory(Path(sys.argv[1])).hold("lc-train fit")
    print(os.getpid(), flush=True)
    time.sleep(600)
""")


def hold_elsewhere(run: RunDirectory, command: str, *child: str) -> tuple[subprocess.Popen, int]:
    """A process that holds ``run`` (with ``child``: hands it to a child) until killed; it and the pid
    of the process that holds the run."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(run.path), command, *child], stdout=subprocess.PIPE)
    return process, int(process.stdout.readline())


def test_a_run_held_by_a_live_process_is_refused_and_reads_as_died_once_it_is_killed(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    run.write_status(RunStatus("running", epoch=1, global_step=7))
    process, pid = hold_elsewhere(run, "lc-train fit")
    try:
        held = holder(run.path)
        assert (held.pid, held.host, held.command) == (pid, socket.gethostname(), "lc-train fit")
        assert run.status().state == "running"
        with pytest.raises(RunHeldError) as refused:
            run.hold("lc-sweep")
        assert (
            str(refused.value)
            == f"{run.path} is in use by process {pid} on {held.host} (lc-train fit, since {held.since})"
        )
    finally:
        process.kill()
        process.wait()
    assert holder(run.path) is None
    died = run.status()
    assert (died.state, died.epoch, died.global_step) == ("died", 1, 7)
    assert died.error == f"its process ({held}) stopped without recording why"
    run.crash_log(pid).write_text("Fatal Python error: Segmentation fault\n")
    assert run.status().error == f"its process crashed: {run.crash_log(pid)} has its stack"
    lock = run.hold("lc-train fit")
    assert lock.previous == held  # what lc-train says as it takes the run over
    assert run.status().state == "running" and holder(run.path).pid == os.getpid()
    run.let_go(lock)
    assert holder(run.path) is None and last_holder(run.path) is None  # let go: nothing stale is left
    assert sorted(path.name for path in run.path.iterdir()) == [f"crash-{pid}.log", "run.lock", "status.json"]


def test_a_lock_handed_to_a_child_stays_held_while_the_child_lives(tmp_path):
    """lc-sweep hands each run's lock to its lc-train: the trainer is named, and a sweep killed outright
    leaves the run held until its trainer ends."""
    run = RunDirectory(tmp_path / "run")
    run.path.mkdir()
    sweep, trainer = hold_elsewhere(run, "lc-sweep", ADOPT)
    try:
        assert holder(run.path).pid == trainer and holder(run.path).command == "lc-train fit"
        sweep.kill()
        sweep.wait()
        assert holder(run.path).pid == trainer
        with pytest.raises(RunHeldError):
            run.hold("lc-sweep")
    finally:
        os.kill(trainer, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while holder(run.path) is not None and time.monotonic() < deadline:  # until the kernel has closed its files
        time.sleep(0.05)
    assert holder(run.path) is None


def test_a_start_refused_by_the_holder_leaves_the_directory_alone(tiny_cifar10, tmp_path, monkeypatch, capsys):
    """Another start takes the run between this one's mkdir of its directory and its lock: this one stops with
    one line and leaves the directory (now the other's) as it is."""
    monkeypatch.chdir(tmp_path)
    hold, holders = RunDirectory.hold, []

    def taken_first(run, command):
        holders.append(hold_elsewhere(run, "lc-train fit")[0])
        return hold(run, command)

    monkeypatch.setattr(RunDirectory, "hold", taken_first)
    args = tiny_cifar_args(tiny_cifar10[0], "--trainer.logger.init_args.version=fixed", "--trainer.callbacks=null")
    try:
        status, line = lc_train(capsys, "fit", *args)
        assert status == 2 and line.startswith("lc-train: error: logs/cifar10_e32/fixed is in use by process ")
        assert (tmp_path / "logs" / "cifar10_e32" / "fixed" / "run.lock").is_file()
    finally:
        for process in holders:
            process.kill()
            process.wait()


def test_a_run_that_died_before_its_first_status_is_started_again_with_its_files_kept_aside(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.create("seed_everything: 0\n")
    run.write_status(RunStatus("running", epoch=0, global_step=0))  # as training starts; killed at step 300
    (run.path / "events.out.tfevents.1.host.2.0").write_bytes(b"steps 10 ... 300")
    assert run.status().state == "died"
    assert run.resume_point("last", world_size=1, restarted_by_slurm=False) is None
    attempt = run.set_aside_earlier_start()
    assert sorted(path.name for path in attempt.iterdir()) == [
        "config.yaml",
        "events.out.tfevents.1.host.2.0",
        "status.json",
    ]
    assert sorted(path.name for path in run.path.iterdir()) == ["attempt_0", "config.yaml"]
    run.write_status(RunStatus("finished", epoch=1, global_step=2))
    with pytest.raises(InvalidArgumentError, match="finished without a checkpoint to resume; start a new run"):
        run.resume_point("last", world_size=1, restarted_by_slurm=False)
    assert run.set_aside_earlier_start() is None  # a finished run is never started again
