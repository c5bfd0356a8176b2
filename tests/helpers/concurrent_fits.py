"""Run ``lc-train`` in N processes that start at the same instant, R times over.

    PYTHONPATH=tests python -m helpers.concurrent_fits OUT R N MD5_JSON -- ARGS...

This process imports lc-train and runs ``lc-train ARGS`` once (so that the processes start warm,
within milliseconds of each other), then, for each round r, forks N processes in the working
directory ``OUT/<r>``, which wait on one pipe until all of them are forked. In ARGS, ``{i}`` is
replaced by the process's number. Process i writes its stdout, stderr and exit status to
``OUT/<r>/<i>.out``, ``<i>.err`` and ``<i>.status``. MD5_JSON holds the md5 sums of the tiny
CIFAR-10 files the processes read (helpers.data.write_cifar10).
"""

import contextlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torchvision import datasets

from helpers.data import register_checksums
from lc_lightning.cli import main


def lc_train(args: list[str], out: Path, name: str) -> int:
    """``lc-train ARGS`` in this process, its stdout and stderr into ``out/<name>.out`` and ``.err``."""
    with open(out / f"{name}.out", "w") as stdout, open(out / f"{name}.err", "w") as stderr:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                main(args)
            except SystemExit as exit_info:
                return exit_info.code if isinstance(exit_info.code, int) else 1
    return 0


def round_of(out: Path, count: int, args: list[str]) -> None:
    """Fork ``count`` processes that run ``lc-train ARGS`` together in ``out`` and wait for them."""
    start, ready = os.pipe()
    children = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:
            os.close(ready)
            os.chdir(out)
            os.read(start, 1)  # returns once the parent and every process forked before closed the pipe
            status = lc_train([arg.replace("{i}", str(index)) for arg in args], out, str(index))
            (out / f"{index}.status").write_text(str(status))
            os._exit(0)
        children.append(pid)
    os.close(ready)
    for pid in children:
        os.waitpid(pid, 0)


if __name__ == "__main__":
    out, rounds, count, md5 = Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
    args = sys.argv[sys.argv.index("--") + 1 :]
    register_checksums(SimpleNamespace(setattr=setattr), datasets.CIFAR10, md5)
    torch.set_num_threads(1)  # many processes share the CPU cores
    (out / "warm").mkdir(parents=True)
    os.chdir(out / "warm")
    if lc_train([arg.replace("{i}", "0") for arg in args], out / "warm", "0") != 0:
        sys.exit(f"lc-train failed: see {out / 'warm' / '0.err'}")
    for number in range(rounds):
        (out / str(number)).mkdir()
        round_of((out / str(number)).resolve(), count, args)
