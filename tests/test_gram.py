"""The gram LC-Block: learned S and P trained by SGD, tracked through products that do not grow with E.

It must take W exactly along the folded form's trajectory (the products of ``nn.gram`` against
torch's SGD on P and S; 30 steps of the module's recipe through a Trainer), resume bitwise, stay
identical on every DDP process without exchanging more than the baseline. Where the reduction is
not exact, the refusals of both reduced forms are tested together in test_preconditioned.py.
"""

from pathlib import Path

import pytest
import torch
from helpers.cli import CONFIGS, GRAM, config_args, run_lc_train, tiny_cifar_args
from helpers.data import FASHION_MNIST_DEBIAN, needs_fashion_mnist
from helpers.networks import assert_same_trajectory, lc_resnet, trained_30_steps
from helpers.runs import assert_same_state, assert_same_training
from helpers.slurm import fake_scontrol
from torch import nn

from lc_lightning.cli import build_cli
from lc_lightning.models import CifarResNet
from lc_lightning.nn import OwnSteps, combined_weight, lc_parametrization, lc_weights, make_lc_block
from lc_lightning.nn.gram import PRODUCTS, GramState, SGDHyperparameters
from lc_lightning.run_directory import RunDirectory

STEPS = [
    {"momentum": 0.9, "dampening": 0.0, "nesterov": True},
    {"momentum": 0.8, "dampening": 0.3, "nesterov": False},
    {"momentum": 0.0, "dampening": 0.0, "nesterov": False},
]


@pytest.mark.parametrize("shared", STEPS)
def test_the_tracked_products_are_those_of_p_and_s_trained_by_torchs_sgd(shared):
    """20 steps, P and S with their own lr and weight decay, the lr changing every step: every tracked
    product equals the one of P, S and SGD's momentum buffers."""
    generator = torch.Generator().manual_seed(0)
    c, m, d = 5, 40, 9
    pointwise = torch.randn(c, m, generator=generator, dtype=torch.float64, requires_grad=True)
    spatial = torch.randn(m, d, generator=generator, dtype=torch.float64, requires_grad=True)
    groups = [{"params": [pointwise], "lr": 0.02, "weight_decay": 0.03}, {"params": [spatial], "lr": 0.01}]
    optimizer = torch.optim.SGD(groups, weight_decay=0.01, **shared)
    state = GramState.start(*(x.detach() for x in (pointwise @ spatial, pointwise @ pointwise.T, spatial.T @ spatial)))
    probe = torch.randn(d, 3, generator=generator, dtype=torch.float64)
    for step in range(20):
        combined = pointwise @ spatial
        grad = torch.autograd.grad((combined @ probe).sin().sum(), combined)[0]
        optimizer.zero_grad()
        combined.backward(grad)
        for group in optimizer.param_groups:
            group["lr"] *= 0.95
        optimizer.step()
        hyper = [SGDHyperparameters(g["lr"], weight_decay=g["weight_decay"], **shared) for g in optimizer.param_groups]
        state = state.step(grad, *hyper, first=step == 0)
    zero = torch.zeros_like
    buffer_p, buffer_s = (optimizer.state[x].get("momentum_buffer") for x in (pointwise, spatial))
    buffer_p = zero(pointwise) if buffer_p is None else buffer_p
    buffer_s = zero(spatial) if buffer_s is None else buffer_s
    p, s = pointwise.detach(), spatial.detach()
    expected = {
        "combined": [p @ s, p @ buffer_s, buffer_p @ s, buffer_p @ buffer_s],
        "left": [p @ p.T, p @ buffer_p.T, buffer_p @ buffer_p.T],
        "right": [s.T @ s, s.T @ buffer_s, buffer_s.T @ buffer_s, buffer_s.T @ s],
    }
    for name in PRODUCTS:
        torch.testing.assert_close(getattr(state, name), torch.stack(expected[name]), rtol=1e-12, atol=1e-12)
    assert expected["combined"][3].norm() > 0 or shared["momentum"] == 0


def two_blocks(form: str, normalized_step: bool) -> nn.Conv2d:
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1, bias=True, dtype=torch.float64)
    return make_lc_block(conv, 8, form=form, normalized_step=normalized_step)


def test_a_gram_block_built_from_a_seed_is_the_folded_one_and_steps_with_its_normalised_step():
    """W0 is the folded block's P0 S0; with normalized_step, OwnSteps and SGD take it where the folded block's
    P (its lr scaled by d / ||S||^2 in its own group) and S go, and leave the optimizer no update of W."""
    folded, gram = two_blocks("folded", True), two_blocks("gram", True)
    torch.testing.assert_close(combined_weight(gram), combined_weight(folded), rtol=1e-13, atol=1e-15)
    spatial, pointwise = lc_weights(folded)
    (_, scale), [bias] = lc_parametrization(folded).pointwise_step_scale(folded), [gram.bias]
    recipe = {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}
    folded_sgd = torch.optim.SGD(
        [{"params": [spatial, folded.parametrizations.weight[0].bias]},
         {"params": [pointwise], "lr": 0.05 * scale, "weight_decay": 0.01 / scale}], **recipe)  # fmt: skip
    gram_sgd = torch.optim.SGD(gram.parameters(), **recipe)
    own = OwnSteps(gram, gram_sgd)
    x = torch.randn(3, 4, 7, 7, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for _ in range(10):
        for conv, optimizer in ((folded, folded_sgd), (gram, gram_sgd)):
            optimizer.zero_grad()
            conv(x).square().mean().backward()
            if conv is gram:
                own.take_gradients()
                assert gram.parametrizations.weight.original.grad is None  # the optimizer gets no gradient of W
            optimizer.step()
    assert gram_sgd.state[gram.parametrizations.weight.original] == {}
    assert (combined_weight(folded) - two_blocks("folded", True).weight).norm() > 0.1
    torch.testing.assert_close(combined_weight(gram), combined_weight(folded), rtol=1e-11, atol=1e-13)
    torch.testing.assert_close(bias, folded.parametrizations.weight[0].bias, rtol=1e-11, atol=1e-13)


def test_a_gram_network_holds_the_baselines_parameters_and_no_buffer_that_grows_with_e():
    """What DDP exchanges every step (gradients of the parameters, buffers) is the baseline's at any E."""
    sizes = {}
    for expansion in (None, 2, 64):
        torch.manual_seed(0)
        network = CifarResNet(10, 3, width=4, expansion=expansion, lc_form="gram")
        sizes[expansion] = [(n, t.shape) for n, t in (*network.named_parameters(), *network.named_buffers())]
    assert [shape for _, shape in sizes[2]] == [shape for _, shape in sizes[64]] == [s for _, s in sizes[None]]


def test_30_steps_of_the_modules_own_recipe_take_gram_and_folded_along_one_trajectory_in_fp64():
    folded = trained_30_steps(lc_resnet("folded"), freeze_spatial=False)
    assert_same_trajectory(trained_30_steps(lc_resnet("gram"), freeze_spatial=False), folded)


def test_a_gram_run_requeued_in_the_middle_of_an_epoch_resumes_bitwise(tiny_cifar10, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = fake_scontrol(tmp_path, monkeypatch)
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    args = tiny_cifar_args(tiny_cifar10[0], *GRAM, "--trainer.max_epochs=2", "--trainer.log_every_n_steps=1")
    build_cli(["fit", *args])  # uninterrupted: version_0
    run = tmp_path / "logs" / "cifar10_e32" / "version_1"
    requeue = RunDirectory(run).requeue_checkpoint
    callbacks = [
        f"--trainer.callbacks+={{class_path: lc_lightning.callbacks.RequeueOnSignal, "
        f"init_args: {{checkpoint: {requeue}}}}}",
        "--trainer.callbacks+={class_path: helpers.interruptions.SignalAtStep, init_args: {step: 6}}",
    ]  # fmt: skip
    with pytest.raises(SystemExit):  # Requeued
        build_cli(["fit", *args, *callbacks])
    assert calls.read_text() == "requeue 78\n"
    saved = torch.load(requeue, weights_only=True)
    assert saved["global_step"] == 7 and saved["CIFAR10DataModule"] == {"train_position": [1, 2]}
    tracked = [value for name, value in saved["state_dict"].items() if name.endswith("_extra_state")]
    assert len(tracked) == 7
    assert all(state["buffers_started"] and state["right"].dtype == torch.float32 for state in tracked)
    build_cli(["fit", "--config", str(run / "config.yaml"), "--ckpt_path=last"])
    assert_same_training(run, run.parent / "version_0", steps=2 * 5)


@needs_fashion_mnist
@pytest.mark.slow
def test_two_ddp_processes_keep_identical_gram_blocks_and_exchange_the_baselines_gradients(tmp_path, monkeypatch):
    """2 gloo processes, E = 64: every LC-Block's tracked products bitwise equal on both ranks at the end, and the
    gradients all-reduced per step are those of the baseline network's parameters (nothing grows with E)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parent))  # helpers.rank_weights
    weights = tmp_path / "weights"
    run = run_lc_train(
        "fit", *config_args(CONFIGS / "table1" / "fashion_mnist_lc_learnable.yaml"), *GRAM,
        "--model.network.init_args.depth=8", "--model.network.init_args.expansion=64",
        f"--data.data_dir={FASHION_MNIST_DEBIAN}", "--data.train_subset=64", "--data.val_subset=16",
        "--data.batch_size=8", "--data.num_workers=0", "--trainer.accelerator=cpu", "--trainer.max_steps=4",
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.enable_progress_bar=false",
        f"--trainer.callbacks+={{class_path: helpers.rank_weights.SaveRankWeights, "
        f"init_args: {{directory: {weights}}}}}",
        f"--trainer.callbacks+={{class_path: helpers.rank_weights.CountAllReducedBytes, "
        f"init_args: {{directory: {weights}}}}}",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = [torch.load(weights / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    tracked = [name for name in ranks[0] if name.endswith("_extra_state")]
    assert len(tracked) == 7 and ranks[0][tracked[0]]["buffers_started"]
    assert_same_state(ranks[0], ranks[1])
    exchanged = [torch.load(weights / f"bytes{r}.pt", weights_only=True) for r in (0, 1)]
    baseline = CifarResNet(10, 1, width=4, depth=8)
    baseline_bytes = sum(p.numel() * p.element_size() for p in baseline.parameters())
    assert exchanged[0] == exchanged[1] == [baseline_bytes] * 4
