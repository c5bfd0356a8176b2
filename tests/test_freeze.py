from functools import partial

import pytest
import torch
from helpers.networks import snapshot
from lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from lc_lightning.callbacks import FreezeSpatialConvs
from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier
from lc_lightning.nn import lc_weights
from lc_lightning.optim import PaperSGD

STEPS = 24


def classifier(expansion: int | None = 2) -> ImageClassifier:
    torch.manual_seed(0)
    network = partial(CifarResNet, depth=8, width=8, expansion=expansion)
    return ImageClassifier(
        network, num_classes=10, in_channels=3, mean=(0.5,) * 3, std=(0.25,) * 3, optimizer=partial(PaperSGD, lr=0.05)
    )


def loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(STEPS * 8, 3, 16, 16, generator=generator)
    labels = torch.randint(0, 10, (STEPS * 8,), generator=generator)
    return DataLoader(TensorDataset(images, labels), batch_size=8)


def fit(module: ImageClassifier, callbacks: list[Callback]) -> Trainer:
    trainer = Trainer(
        accelerator="cpu", max_epochs=1, callbacks=callbacks, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
    )  # fmt: skip
    trainer.fit(module, train_dataloaders=loader())
    assert trainer.global_step == STEPS
    return trainer


@pytest.mark.parametrize("expansion", [None, 4])
def test_frozen_spatial_weights_stay_bitwise_equal_while_the_rest_learns(expansion):
    module = classifier(expansion)
    frozen = set(FreezeSpatialConvs.frozen_weights(module))
    assert len(frozen) == 7  # ResNet-8: stem + 3 stages x 1 block x 2 convs
    before = snapshot(module)
    trainer = fit(module, [FreezeSpatialConvs()])
    after = snapshot(module)
    assert frozen == {name for name, p in module.named_parameters() if not p.requires_grad}
    for name in before:
        if name in frozen:
            assert torch.equal(before[name], after[name]), name
        else:
            assert not torch.equal(before[name], after[name]), f"{name} did not move"
    optimized = {id(p) for group in trainer.optimizers[0].param_groups for p in group["params"]}
    named = dict(module.named_parameters())
    assert optimized == {id(named[name]) for name in before if name not in frozen}
    if expansion is None:  # the 1x1 shortcut convs are not spatial: trained
        assert "network.stages.1.0.shortcut.0.weight" not in frozen


def test_without_the_callback_spatial_weights_move():
    module = classifier(4)
    frozen = set(FreezeSpatialConvs.frozen_weights(module))
    before = snapshot(module)
    fit(module, [])
    after = snapshot(module)
    for name in frozen:
        assert not torch.equal(before[name], after[name]), name


class TouchFrozenWeight(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch_idx == 5:
            with torch.no_grad():
                lc_weights(pl_module.network.stem[0])[0][0, 0, 0, 0] += 1e-6


def test_a_frozen_weight_changed_behind_its_back_fails_the_fit():
    with pytest.raises(
        RuntimeError,
        match="frozen spatial weights changed during fit: network.stem.0.parametrizations.weight.original0",
    ):
        fit(classifier(2), [FreezeSpatialConvs(), TouchFrozenWeight()])


class OptimizesEverything(ImageClassifier):
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_an_optimizer_holding_frozen_weights_is_refused():
    torch.manual_seed(0)
    module = OptimizesEverything(partial(CifarResNet, depth=8, width=8, expansion=2), 10, 3, (0.5,) * 3, (0.25,) * 3)
    with pytest.raises(RuntimeError, match="optimizer holds frozen spatial weights"):
        fit(module, [FreezeSpatialConvs()])
