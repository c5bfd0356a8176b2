"""Real data: README's quick run (configs/quickstart.yaml) learns Fashion-MNIST on CPU within its budget."""

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers.cli import CONFIGS
from helpers.data import needs_fashion_mnist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.mark.slow
@needs_fashion_mnist
def test_the_quick_run_reaches_85_percent_on_the_full_test_split_in_3_minutes(tmp_path):
    # README's command as a new user runs it, in an empty directory: Fashion-MNIST comes from Debian's
    # package. Lightning's max_time stops training at 3 minutes, so a run that needs longer ends without
    # its final validation and fails below. The validation covers all 10,000 test images.
    command = [
        str(Path(sys.executable).parent / "lc-train"), "fit", "--config", str(CONFIGS / "quickstart.yaml"),
        "--trainer.max_time=00:00:03:00", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "logs" / "quickstart" / "version_0"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    val_acc = events.Scalars("val/acc")
    assert val_acc[-1].step == 468, "training did not finish its epoch (469 steps) within 3 minutes"
    print(f"\nREADME's quick run: val/acc {val_acc[-1].value:.4f}, lc-train took {elapsed:.0f} s")
    assert val_acc[-1].value >= 0.85
    summary = re.search(r"val/acc +last ([\d.]+)", result.stdout)
    assert summary and float(summary[1]) == pytest.approx(val_acc[-1].value, abs=5e-5)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 469
    assert checkpoint["state_dict"]["network.stem.0.parametrizations.weight.original0"].shape == (16 * 4, 1, 3, 3)
