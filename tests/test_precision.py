"""bf16-mixed trains through lc-train on CPU, close to fp32."""

import pytest
import torch
from helpers.cli import tiny_cifar_args

from lc_lightning.cli import build_cli


def test_bf16_mixed_trains_on_cpu_like_fp32(tiny_cifar10, tmp_path, monkeypatch):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    runs = {}
    for precision in ("32-true", "bf16-mixed"):
        args = tiny_cifar_args(root, "--trainer.max_steps=1", "--trainer.num_sanity_val_steps=0")
        cli = build_cli(["fit", *args, f"--trainer.precision={precision}"])
        runs[precision] = cli
    fp32, bf16 = runs["32-true"], runs["bf16-mixed"]
    assert bf16.trainer.precision == "bf16-mixed"
    # same initial weights and first batch: the first loss differs by bf16 rounding only
    fp32_loss, bf16_loss = (run.trainer.callback_metrics["train/loss_step"] for run in (fp32, bf16))
    assert bf16_loss.dtype == torch.float32 and torch.isfinite(bf16_loss)
    assert bf16_loss.item() == pytest.approx(fp32_loss.item(), rel=1e-2)
    assert bf16_loss.item() != fp32_loss.item()  # bf16 did run
    # the parameters stay fp32 and move by nearly the same step
    bf16_weights = bf16.model.state_dict()
    for name, after_fp32 in fp32.model.state_dict().items():
        assert bf16_weights[name].dtype == after_fp32.dtype, name
        torch.testing.assert_close(bf16_weights[name], after_fp32, rtol=0.05, atol=1e-3, msg=name)
