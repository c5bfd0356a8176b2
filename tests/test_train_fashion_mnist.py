"""Real data: ResNet-LC-20-16x8 with frozen random spatial filters learns Fashion-MNIST on CPU."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, FASHION_MNIST_DEBIAN, config_args, needs_fashion_mnist
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


@pytest.mark.slow
@needs_fashion_mnist
def test_lc_frozen_x8_reaches_88_percent_in_3_minutes_on_cpu(tmp_path):
    # One epoch over all 60,000 training images at batch 64 and lr 0.05 (the config's 75
    # epochs of the paper's recipe are far beyond a 3-minute budget); Lightning's max_time
    # stops training at 3 minutes, so a run that needs longer ends without its final
    # validation and fails below. The final validation covers all 10,000 test images.
    command = [
        str(Path(sys.executable).parent / "lc-train"), "fit",
        *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"),
        "--model.network.init_args.expansion=8", "--trainer.max_epochs=1", "--trainer.max_time=00:00:03:00",
        "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false", "--model.lr=0.05",
        "--data.batch_size=64", "--data.num_workers=1", f"--data.data_dir={FASHION_MNIST_DEBIAN}",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
    ]  # fmt: skip
    start = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "table1" / "fashion_mnist_lc_frozen" / "version_0"
    events = EventAccumulator(str(run_dir))
    events.Reload()
    val_acc = events.Scalars("val/acc")
    assert val_acc[-1].step == 937, "training did not finish its epoch (938 steps) within 3 minutes"
    print(f"\nFashion-MNIST ResNet-LC-20-16x8 frozen: val/acc {val_acc[-1].value:.4f}, fit took {elapsed:.0f} s")
    assert val_acc[-1].value >= 0.88
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert checkpoint["global_step"] == 938
    assert checkpoint["state_dict"]["network.stem.0.spatial.weight"].shape == (16 * 8, 1, 3, 3)
