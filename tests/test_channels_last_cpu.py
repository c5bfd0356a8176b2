"""Channels-last on the CPU: ImageClassifier leaves it off for a network with a 1x1 stride-2 convolution of
fewer than 16 input channels, whose channels-last weight gradient torch 2.14.1 gets wrong on the CPU (see
``lc_lightning.module._breaks_channels_last_on_cpu``), and keeps it everywhere else. The training run that
crashed without that runs in a subprocess, so that a crash fails the test on its exit status."""

import subprocess
import sys
from functools import partial

import pytest
import torch
from helpers.devices import CUDA_TEST_DEVICE

from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier

FIT_64_PX = """
import sys
from functools import partial
import torch
from lightning import Trainer
from torch.utils.data import DataLoader, TensorDataset
from lc_lightning.models import CifarResNet
from lc_lightning.module import ImageClassifier

def trainer(steps):
    return Trainer(accelerator="cpu", max_steps=steps, logger=False, enable_checkpointing=False,
                   enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)

torch.manual_seed(0)
loader = DataLoader(TensorDataset(torch.rand(16, 3, 64, 64), torch.randint(0, 10, (16,))), batch_size=8)
first = trainer(1)
first.fit(ImageClassifier(partial(CifarResNet, depth=8, width=4), 10, 3, (0.5,) * 3, (0.25,) * 3), loader)
first.save_checkpoint(sys.argv[1])
resumed = ImageClassifier.load_from_checkpoint(sys.argv[1], weights_only=False)
trainer(2).fit(resumed, loader, ckpt_path=sys.argv[1], weights_only=False)
print("steps", resumed.global_step, "channels_last", resumed.hparams.channels_last)
"""


def classifier(width: int) -> ImageClassifier:
    """CifarResNet-8 of ``width`` with the default channels_last=True; its stage-2 shortcut has ``width``
    input channels."""
    torch.manual_seed(0)
    return ImageClassifier(partial(CifarResNet, depth=8, width=width), 10, 3, (0.5,) * 3, (0.25,) * 3)


def runs_channels_last(model: ImageClassifier, images: torch.Tensor) -> bool:
    """Whether a forward of ``images`` gives the network channels-last inputs, asserting that the weights of
    its convolutions (the 3x3 stem's tells) are in the same format."""
    seen = []
    hook = model.network.register_forward_pre_hook(
        lambda _, args: seen.append(args[0].is_contiguous(memory_format=torch.channels_last))
    )
    with torch.no_grad():
        model(images)
    hook.remove()
    assert model.network.stem[0].weight.is_contiguous(memory_format=torch.channels_last) == seen[0]
    return seen[0]


def test_training_on_64_px_images_on_the_cpu_runs_and_resumes_from_its_checkpoint(tmp_path):
    # without the fix: "double free or corruption" (exit 134) or a segfault (139) in the first steps
    command = [sys.executable, "-c", FIT_64_PX, str(tmp_path / "last.ckpt")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"exit status {result.returncode}:\n{result.stderr[-3000:]}"
    assert result.stdout.split()[-4:] == ["steps", "2", "channels_last", "True"]


def test_on_the_cpu_channels_last_stays_on_for_networks_without_such_a_convolution():
    paper = classifier(width=16)  # the paper's CifarResNets: shortcuts with 16 and 32 input channels
    assert runs_channels_last(paper, torch.rand(2, 3, 32, 32))
    assert runs_channels_last(paper, torch.rand(2, 3, 64, 64))
    narrow = classifier(width=4)
    assert not runs_channels_last(narrow, torch.rand(2, 3, 32, 32))
    assert narrow.hparams.channels_last  # still asked for: a checkpoint carries it to a GPU
    assert not runs_channels_last(classifier(width=8), torch.rand(2, 3, 64, 64))


@pytest.mark.cuda
def test_on_a_gpu_channels_last_stays_on_for_every_network():
    device = torch.device(CUDA_TEST_DEVICE)
    model = classifier(width=4)
    assert runs_channels_last(model.to(device), torch.rand(2, 3, 64, 64, device=device)) == (device.type == "cuda")
    assert not runs_channels_last(model.cpu(), torch.rand(2, 3, 64, 64))  # and off again back on the CPU
