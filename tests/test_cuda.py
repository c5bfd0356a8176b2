"""On a CUDA GPU: the LC-Blocks in fp32, TF32 and bf16, the device loader, bf16-mixed training,
torch.compile and channels-last (the ``cuda`` marker: skipped without a GPU; LC_TEST_DEVICE=cpu
runs them on the CPU, as the GPU acceptance's --dry-run does).

Tolerances, as ||x - reference|| / ||reference|| against float64 on the CPU through a whole
ResNet-LC-20-16x8: fp32 1e-4 (other kernels, other summation orders); TF32, 10 mantissa bits,
about 5e-4 per product, 1e-2 through 20 layers; bf16 autocast, 8 bits, about 2e-3 per product,
5e-2 through 20 layers.
"""

import contextlib

import pytest
import torch
from helpers.cli import tiny_cifar_args, usage_error
from helpers.devices import CUDA_TEST_DEVICE
from helpers.loaders import cifar_modules, cpu_trainer, epoch_batches, window_offsets
from helpers.networks import classifier, outputs_and_grads, relative_error, replace_relus, train_step

from lc_lightning.cli import build_cli
from lc_lightning.models import CifarResNet
from lc_lightning.nn import lc_blocks, lc_weights

pytestmark = pytest.mark.cuda

PRECISIONS = {"fp32": 1e-4, "tf32": 1e-2, "bf16-autocast": 5e-2}


@pytest.fixture
def device() -> torch.device:
    return torch.device(CUDA_TEST_DEVICE)


@contextlib.contextmanager
def precision(device: torch.device, name: str):
    """fp32 with TF32 off or on for matrix products and convolutions, or bf16 autocast."""
    flags = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = name == "tf32"
    try:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=name == "bf16-autocast"):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags


@pytest.mark.parametrize("name", PRECISIONS)
def test_folded_and_explicit_lc_blocks_compute_the_float64_outputs_and_gradients(device, name):
    torch.manual_seed(0)
    network = CifarResNet(10, 3, depth=20, width=16, expansion=8).eval()  # eval: fixed BN statistics
    replace_relus(network)  # no ReLU kink flips between the paths (see test_lc_block)
    images = torch.randn(4, 3, 32, 32)
    reference_out, *reference_grads = outputs_and_grads(network.double(), images.double(), form="folded")
    network, images = network.float().to(device), images.to(device)
    tolerance = PRECISIONS[name]
    for form in ("folded", "explicit"):
        with precision(device, name):
            out, *grads = outputs_and_grads(network, images, form=form)
        assert out.device.type == device.type
        assert relative_error(out, reference_out) < tolerance, form
        for grad, reference in zip(grads, reference_grads, strict=True):
            assert torch.isfinite(grad).all() and relative_error(grad, reference) < tolerance, form


def test_the_preconditioned_block_follows_the_folded_one_on_the_device(device):
    """Three SGD steps of the whole network: W of the preconditioned form stays P S of the folded one."""
    images, labels = torch.rand(8, 3, 32, 32, device=device), torch.randint(0, 10, (8,), device=device)
    networks = {}
    for form in ("folded", "preconditioned"):
        torch.manual_seed(0)
        network = CifarResNet(10, 3, depth=8, width=4, expansion=4, lc_form=form).to(device)
        for _, block in lc_blocks(network):
            if form == "folded":
                lc_weights(block)[0].requires_grad_(False)  # frozen S
        optimizer = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=0.1, momentum=0.9)
        for _ in range(3):
            optimizer.zero_grad()
            with precision(device, "fp32"):
                torch.nn.functional.cross_entropy(network(images), labels).backward()
            optimizer.step()
        networks[form] = network
    folded, preconditioned = (dict(lc_blocks(networks[form])) for form in ("folded", "preconditioned"))
    assert folded.keys() == preconditioned.keys() and folded
    for name, block in folded.items():
        spatial, pointwise = lc_weights(block)
        combined = torch.einsum("om,mcij->ocij", pointwise, spatial)
        assert relative_error(preconditioned[name].weight, combined) < 1e-4, name


def test_the_device_loader_on_the_device_gives_the_cpu_paths_batches(device, tiny_cifar10):
    root, written = tiny_cifar10
    _, on_cpu = cifar_modules(root)
    _, on_device = cifar_modules(root)
    on_device.trainer = cpu_trainer()
    on_device.trainer.strategy.root_device = device
    originals = torch.cat([torch.from_numpy(pixels).view(-1, 3, 32, 32) for pixels, _ in written["train"]])
    for number in (0, 1):
        cpu_loader = on_cpu.train_dataloader()
        cpu_batches = epoch_batches(cpu_loader, number)
        device_batches = epoch_batches(on_device.train_dataloader(), number)
        assert [len(y) for _, y in device_batches] == [len(y) for _, y in cpu_batches] == [16, 16, 8]
        for (x, y), (_, y_cpu) in zip(device_batches, cpu_batches, strict=True):
            assert x.device.type == y.device.type == device.type and x.dtype == torch.float32
            assert torch.equal(y.cpu(), y_cpu)  # the same images in the same order
        order = list(cpu_loader.sampler)
        images = torch.cat([x.cpu() for x, _ in device_batches])
        window_offsets((images * 255).round().to(torch.uint8), originals[order], 4)  # augmented alike
    for (x, y), (x_cpu, y_cpu) in zip(on_device.val_dataloader(), on_cpu.val_dataloader(), strict=True):
        assert torch.equal(x.cpu(), x_cpu) and torch.equal(y.cpu(), y_cpu)  # no augmentation: to the bit


def accelerator(device: torch.device) -> str:
    return "gpu" if device.type == "cuda" else "cpu"


def test_lc_train_fits_in_bf16_mixed_with_the_device_loader(device, tiny_cifar10, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=2", "--data.loader=device")
    args += [f"--trainer.accelerator={accelerator(device)}", "--trainer.precision=bf16-mixed"]
    args += ["--model.freeze_spatial=true", "--model.network.init_args.lc_form=preconditioned"]
    cli = build_cli(["fit", *args])
    assert cli.trainer.strategy.root_device.type == device.type and cli.trainer.global_step == 10
    parameters = dict(cli.model.named_parameters())
    assert all(p.device.type == device.type and torch.isfinite(p).all() for p in parameters.values())
    assert parameters["network.fc.weight"].dtype == torch.float32  # bf16-mixed keeps the weights in fp32
    assert torch.isfinite(cli.trainer.callback_metrics["val/loss"])


def test_a_nan_loss_read_one_step_late_stops_before_the_next_checkpoint(
    device, tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = tiny_cifar_args(tiny_cifar10[0], "--trainer.max_epochs=3", f"--trainer.accelerator={accelerator(device)}")
    args += ["--model.network=helpers.faulty_networks.NaNAfterSteps", "--model.network.init_args.nan_from=4"]
    args.remove("--model.network.init_args.depth=8")
    err = usage_error(capsys, "fit", *args)
    assert "the training loss is not finite (nan on this rank) at step 4 (epoch 0, batch 4)" in err
    assert not list((tmp_path / "logs").rglob("*.ckpt"))  # the end of epoch 0 saved nothing after the NaN


@pytest.mark.parametrize("options", [{"compile": True}, {"channels_last": True}], ids=["compile", "channels-last"])
def test_a_fast_path_step_computes_the_plain_step(device, options):
    images, labels = torch.rand(8, 3, 32, 32, device=device), torch.randint(0, 10, (8,), device=device)
    plain = classifier(channels_last=False).to(device)
    fast = classifier(**{"channels_last": False, **options}).to(device)
    with precision(device, "fp32"):
        fast_logits, plain_logits = train_step(fast, images, labels), train_step(plain, images, labels)
    torch.testing.assert_close(fast_logits, plain_logits, rtol=1e-3, atol=1e-4)
    for name, value in plain.state_dict().items():
        torch.testing.assert_close(fast.state_dict()[name], value, rtol=1e-3, atol=1e-4, msg=name)
    if options.get("channels_last"):  # the convolutions that run as such, not the LC-Blocks' S and P
        blocks = [conv for _, conv in lc_blocks(fast.network)]
        plain_convs = [m for m in fast.network.modules() if isinstance(m, torch.nn.Conv2d) and m not in blocks]
        assert plain_convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in plain_convs)
