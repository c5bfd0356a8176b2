"""lc-train's progress bar: redrawn by time, so that a fast GPU does not wait for it every step."""

import pytest
import torch
from helpers.cli import tiny_cifar_args
from helpers.networks import classifier
from lightning import Trainer
from lightning.pytorch.callbacks import TQDMProgressBar
from torch.utils.data import DataLoader, TensorDataset

from lc_lightning.callbacks import ProgressBar
from lc_lightning.cli import build_cli


@pytest.mark.parametrize("refresh_seconds, drawn", [(0, 10), (3600, 3)])
def test_the_training_bar_is_drawn_at_most_every_refresh_seconds_and_at_each_epochs_end(
    monkeypatch, tmp_path, refresh_seconds, drawn
):
    draws = []  # drawing reads the logged values from the device
    monkeypatch.setattr(TQDMProgressBar, "on_train_batch_end", lambda self, *args: draws.append(args[-1]))
    data = TensorDataset(torch.rand(40, 3, 32, 32), torch.randint(0, 10, (40,)))
    trainer = Trainer(
        accelerator="cpu", max_epochs=2, callbacks=[ProgressBar(refresh_seconds)], logger=False,
        enable_checkpointing=False, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(classifier(), DataLoader(data, batch_size=8))  # 5 batches an epoch
    assert len(draws) == drawn
    assert draws[-1] == 4  # the last batch is always shown
    if refresh_seconds:
        assert draws == [0, 4, 4]  # the first batch, then each epoch's last


@pytest.mark.parametrize(
    "options, bar",
    [([], ProgressBar), (["--trainer.callbacks=lightning.pytorch.callbacks.TQDMProgressBar"], TQDMProgressBar),
     (["--trainer.enable_progress_bar=false"], None)],
)  # fmt: skip
def test_lc_train_shows_its_own_bar_unless_the_config_names_one_or_none(
    tiny_cifar10, tmp_path, monkeypatch, options, bar
):
    monkeypatch.chdir(tmp_path)
    args = [arg for arg in tiny_cifar_args(tiny_cifar10[0]) if arg != "--trainer.enable_progress_bar=false"]
    trainer = build_cli([*args, *options], run=False).trainer
    shown = trainer.progress_bar_callback
    assert (shown is None) if bar is None else type(shown) is bar
