"""The val/* and test/* loss and accuracy that status.json records are those of the evaluated images.

A fit, a validate and a test through lc-train's CLI on a tiny CIFAR-10 whose 10 test images come in batches
of 4, 4 and 2; the loss and accuracy are computed again from the saved checkpoint on the images of the
files, without Lightning: the mean over the images of the module's cross-entropy (with its label smoothing),
and the share of images whose largest logit is the label.
"""

import pytest
import torch
from torch.nn import functional as F

from lc_lightning.cli import build_cli
from lc_lightning.module import ImageClassifier
from lc_lightning.run_directory import RunDirectory

BATCH = 4  # the 10 test images come in batches of 4, 4 and 2
RUN = ("logs", "lc-train", "version_0")


def fit_args(root) -> list[str]:
    """A ResNet-LC-8-4x2 trained for one epoch on 8 images, evaluated in fp32."""
    return [
        "--data=lc_lightning.data.CIFAR10DataModule", f"--data.data_dir={root}", "--data.download=false",
        "--data.num_workers=0", f"--data.batch_size={BATCH}", "--data.train_subset=8",
        "--model.network=lc_lightning.models.CifarResNet", "--model.network.init_args.depth=8",
        "--model.network.init_args.width=4", "--model.network.init_args.expansion=2",
        "--trainer.accelerator=cpu", "--trainer.precision=32-true",
        "--trainer.max_epochs=1", "--trainer.num_sanity_val_steps=0", "--trainer.enable_progress_bar=false",
    ]  # fmt: skip


def evaluated_images(written: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The test split as written into the pickles: images in [0, 1] (N, 3, 32, 32) and labels."""
    ((rows, labels),) = written["test"]
    return torch.from_numpy(rows).float().div(255).view(-1, 3, 32, 32), torch.tensor(labels)


def per_image_losses(checkpoint, images, labels) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's cross-entropy (with the module's label smoothing) and whether it is classified right."""
    model = ImageClassifier.load_from_checkpoint(checkpoint).eval()
    with torch.no_grad():
        logits = model(images)
    losses = F.cross_entropy(logits, labels, label_smoothing=model.hparams.label_smoothing, reduction="none")
    return losses.double(), (logits.argmax(dim=1) == labels).double()


def wrong_reductions(values: torch.Tensor) -> dict[str, float]:
    """What the per-image ``values`` of the evaluation's batches reduce to in ways other than their mean."""
    batch_means = [part.mean().item() for part in values.split(BATCH)]
    return {
        "the mean of the batch means": sum(batch_means) / len(batch_means),
        "the last batch's mean": batch_means[-1],
        "the sum of the batch means": sum(batch_means),
        "the sum": values.sum().item(),
    }


def test_val_and_test_loss_and_accuracy_are_the_means_over_the_evaluated_images(tiny_cifar10, tmp_path, monkeypatch):
    root, written = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    build_cli(["fit", *fit_args(root)])
    run = RunDirectory(tmp_path.joinpath(*RUN))
    checkpoint = run.checkpoint_dir / "last.ckpt"
    build_cli(["validate", f"--ckpt_path={checkpoint}"])
    build_cli(["test", f"--ckpt_path={checkpoint}"])
    validated, tested = (evaluation.status() for evaluation in run.evaluations())

    losses, right = per_image_losses(checkpoint, *evaluated_images(written))
    assert len(losses) == 10
    loss, accuracy = losses.mean().item(), right.mean().item()
    for name, values in (("loss", losses), ("accuracy", right)):  # a wrong reduction would log another value
        for other, value in wrong_reductions(values).items():
            assert abs(value - values.mean().item()) > 1e-3, f"{name}: {other}"

    fitted = run.status().metrics
    assert abs(fitted["train/loss_epoch"] - loss) > 1e-3  # the training loss is another
    for metrics, stage in ((fitted, "val"), (validated.metrics, "val"), (tested.metrics, "test")):
        assert metrics[f"{stage}/loss"] == pytest.approx(loss, rel=1e-5), stage
        assert metrics[f"{stage}/acc"] == pytest.approx(accuracy, abs=1e-6), stage
