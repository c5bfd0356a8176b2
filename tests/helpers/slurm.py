"""A real two-node SLURM cluster on this machine, as the ``slurm_cluster`` fixture (conftest.py) runs it for the
session, and a fake ``scontrol`` for runs that requeue themselves without one.

The fixture runs ``scripts/slurm/local_cluster.sh start`` in a temporary directory (munged, slurmctld and
two slurmd simulating the nodes n1 and n2, 2 CPUs each, all on 127.0.0.1), yields a
:class:`SlurmCluster` whose ``env`` makes ``srun``/``sbatch``/``sinfo`` talk to it, and stops it at
the end of the session, also when a test or the start failed. The daemons' logs stay in
``SlurmCluster.dir``. Installing Slurm is not its job (CI runs ``local_cluster.sh install``); where
the binaries are missing the tests that use it are skipped.
"""

import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "slurm" / "local_cluster.sh"
BINARIES = ("munged", "slurmctld", "slurmd", "srun", "sbatch", "sinfo", "squeue", "scancel")
# the daemons live in /usr/sbin, which a non-root PATH may lack
SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])


@dataclass(frozen=True)
class SlurmCluster:
    """A running local cluster: ``dir`` holds its config, state and logs; ``env`` is the environment
    for commands that use it (this process's, less inherited ``SLURM_*`` variables, plus
    ``SLURM_CONF``). Its node names n1/n2 do not resolve, so programs that take the first node of
    ``SLURM_NODELIST`` as an address (Lightning's ``MASTER_ADDR``) need ``MASTER_ADDR=127.0.0.1``."""

    dir: Path
    env: dict[str, str]

    def run(self, *command: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
        """Run ``command`` with the cluster's environment; text output captured, ``timeout`` seconds at most."""
        return subprocess.run(command, env=self.env, capture_output=True, text=True, timeout=timeout, **kwargs)

    def ddp_env(self) -> dict[str, str]:
        """``env`` plus what a DDP run over the two simulated nodes needs: the rendezvous address
        (n1 does not resolve), a free port (Lightning's default derives from the job id, the same
        on every fresh cluster) and gloo on the loopback interface (both "nodes" are this host)."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return {**self.env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo"}

    def logs(self) -> str:
        """The last lines of every daemon's log, for assertion messages."""
        tails = [
            f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-20:])
            for log in sorted(self.dir.glob("*.log"))
        ]
        return "\n".join(tails)


def wait_until(condition, timeout: float, what: str) -> None:
    """Poll ``condition`` every 0.2 s (quick enough to act on a job between two of its epochs) until
    it holds; fail the test, naming ``what``, after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def without_slurm_job_variables(environ: dict[str, str]) -> dict[str, str]:
    """``environ`` less ``SLURM_*``: inside an outer job (CI on a real cluster) they would send srun there."""
    return {name: value for name, value in environ.items() if not name.startswith("SLURM_")}


def fake_scontrol(tmp_path: Path, monkeypatch) -> Path:
    """An ``scontrol`` first on PATH that writes its arguments to the file it returns."""
    calls = tmp_path / "scontrol-calls"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return calls
