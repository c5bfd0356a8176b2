"""FGSM: the attack against its closed form, and FGSMAccuracy in fit, validate, bf16 and DDP."""

from functools import partial

import pytest
import torch
from helpers.cli import CONFIGS, config_args, run_lc_train
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from lightning import Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn
from torch.nn import functional as F

from lc_lightning.analysis.fgsm import fgsm_images, fgsm_robust
from lc_lightning.callbacks import FGSMAccuracy
from lc_lightning.cli import build_cli
from lc_lightning.data import FashionMNISTDataModule
from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier
from lc_lightning.optim import PaperSGD


def linear_model(classes: int) -> tuple[nn.Module, nn.Linear]:
    torch.manual_seed(0)
    linear = nn.Linear(12, classes).double()
    return nn.Sequential(nn.Flatten(), linear), linear


def test_on_a_linear_classifier_the_perturbation_is_the_closed_form():
    model, linear = linear_model(5)
    images = torch.rand(16, 3, 2, 2, dtype=torch.float64)
    targets = torch.randint(0, 5, (16,))
    epsilon = 8 / 255
    x = images.flatten(1)
    # d CE / d x = W^T (softmax(W x + b) - onehot(y)), one row per image
    gradient = (torch.softmax(x @ linear.weight.T + linear.bias, dim=1) - F.one_hot(targets, 5)) @ linear.weight
    expected = (x + epsilon * gradient.sign()).clamp(0, 1) - x
    perturbation = fgsm_images(model, images, targets, epsilon) - images
    torch.testing.assert_close(perturbation.flatten(1), expected, rtol=0, atol=1e-12)
    assert perturbation.abs().max() <= epsilon + 1e-12 and (expected.abs() > 0).any()


def test_inputs_already_at_the_bound_in_the_attack_direction_stay_unchanged():
    # With two classes and y = 0 the gradient is (1 - p0) (W1 - W0): its sign does not depend on x,
    # so images at 1 where it is positive and at 0 where it is negative cannot move.
    model, linear = linear_model(2)
    direction = (linear.weight[1] - linear.weight[0]).detach()
    images = (direction > 0).double().view(1, 3, 2, 2).repeat(4, 1, 1, 1)
    targets = torch.zeros(4, dtype=torch.long)
    assert torch.equal(fgsm_images(model, images, targets, 0.1), images)
    assert not torch.equal(fgsm_images(model, torch.full_like(images, 0.5), targets, 0.1), torch.full_like(images, 0.5))


def test_robust_means_correct_before_and_after_the_attack():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 20), nn.ReLU(), nn.Linear(20, 4))
    images, targets = torch.rand(256, 3, 4, 4), torch.randint(0, 4, (256,))
    clean = model(images).argmax(1) == targets
    robust = fgsm_robust(model, images, targets, 0.05)
    assert robust.dtype == torch.bool and not (robust & ~clean).any()  # robust accuracy <= clean accuracy
    assert robust.sum() < clean.sum()
    assert torch.equal(fgsm_robust(model, images, targets, 0.0), clean)
    with pytest.raises(ValueError, match="epsilon"):
        fgsm_images(model, images, targets, 2.0)


def quiet_trainer(**kwargs) -> Trainer:
    defaults = {
        "accelerator": "cpu", "logger": False, "enable_checkpointing": False,
        "enable_progress_bar": False, "enable_model_summary": False,
    }  # fmt: skip
    return Trainer(**{**defaults, **kwargs})


@needs_fashion_mnist
def test_fgsm_accuracy_on_a_model_trained_on_real_fashion_mnist():
    # What counts is that the callback's value is that of the attack computed directly; a briefly
    # trained network does for that: 128 steps on 2048 images take it from chance (10 %) to ~60 %.
    torch.manual_seed(0)
    data = FashionMNISTDataModule(
        data_dir=FASHION_MNIST_DEBIAN, batch_size=16, num_workers=0, train_subset=2048, val_subset=500
    )
    network = partial(CifarResNet, depth=8, width=8, expansion=4)
    model = ImageClassifier(
        network, 10, 1, data.mean, data.std, freeze_spatial=True, optimizer=partial(PaperSGD, lr=0.1)
    )
    epsilon = 8 / 255
    trainer = quiet_trainer(max_epochs=1, callbacks=[FGSMAccuracy(epsilon)])
    trainer.fit(model, data)
    clean, robust = trainer.callback_metrics["val/acc"].item(), trainer.callback_metrics["val/fgsm_acc"].item()
    assert clean > 0.5 and 0 < robust < clean

    # The same value over the whole validation set, computed directly.
    model.eval()
    direct = torch.cat([fgsm_robust(model, x, y, epsilon) for x, y in data.val_dataloader()])
    assert len(direct) == 500 and direct.float().mean().item() == pytest.approx(robust, abs=1e-6)

    trainer.validate(model, data, verbose=False)
    assert trainer.callback_metrics["val/fgsm_acc"].item() == pytest.approx(robust, abs=1e-6)
    trainer.test(model, data, verbose=False)
    assert trainer.callback_metrics["test/fgsm_acc"].item() == pytest.approx(robust, abs=1e-6)

    bf16 = quiet_trainer(precision="bf16-mixed", callbacks=[FGSMAccuracy(epsilon)])
    bf16.validate(model, data, verbose=False)
    bf16_clean, bf16_robust = (bf16.callback_metrics[k].item() for k in ("val/acc", "val/fgsm_acc"))
    assert bf16_robust < bf16_clean and bf16_robust == pytest.approx(robust, abs=0.03)


def test_during_fit_it_runs_every_n_epochs_and_on_the_last(tmp_path):
    torch.manual_seed(0)
    images, targets = torch.rand(32, 1, 8, 8), torch.randint(0, 3, (32,))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, targets), batch_size=16)
    network = partial(CifarResNet, depth=8, width=4)
    model = ImageClassifier(network, 3, 1, (0.5,), (0.25,))
    logger = TensorBoardLogger(tmp_path, name="run")
    trainer = quiet_trainer(max_epochs=5, logger=logger, callbacks=[FGSMAccuracy(every_n_epochs=2)])
    trainer.fit(model, loader, loader)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    val_steps = [event.step for event in events.Scalars("val/acc")]
    fgsm_steps = [event.step for event in events.Scalars("val/fgsm_acc")]
    assert len(val_steps) == 5 and fgsm_steps == [val_steps[1], val_steps[3], val_steps[4]]  # epochs 2, 4, 5


@needs_fashion_mnist
@pytest.mark.slow
def test_under_ddp_the_value_is_that_of_the_whole_validation_set(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "fgsm.yaml").write_text(
        "trainer:\n  callbacks:\n    - {class_path: lc_lightning.callbacks.FGSMAccuracy, init_args: {epsilon: 0.03}}\n"
    )
    common = [
        *config_args(CONFIGS / "table1" / "fashion_mnist_lc_frozen.yaml"), "--config", "fgsm.yaml",
        "--model.network.init_args.depth=8", "--model.network.init_args.expansion=2",
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.val_subset=200", "--data.batch_size=50",
        "--data.num_workers=0", "--trainer.accelerator=cpu", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip
    build_cli(["fit", *common, "--data.train_subset=2000", "--trainer.max_epochs=1"])
    checkpoint = tmp_path / "logs" / "table1" / "fashion_mnist_lc_frozen" / "version_0" / "checkpoints" / "last.ckpt"
    validate = ["validate", *common, f"--ckpt_path={checkpoint}"]
    build_cli([*validate, "--trainer.devices=1", "--trainer.strategy=auto"])  # one process: validate_0
    result = run_lc_train(*validate, "--trainer.devices=2", "--trainer.strategy=ddp")  # two processes: validate_1
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = {}
    for evaluation, devices in enumerate((1, 2)):
        events = EventAccumulator(str(checkpoint.parent.parent / f"validate_{evaluation}"))
        events.Reload()
        metrics[devices] = {tag: events.Scalars(tag)[-1].value for tag in ("val/acc", "val/fgsm_acc")}
    assert 0 < metrics[1]["val/fgsm_acc"] < metrics[1]["val/acc"]
    assert metrics[2] == metrics[1]
