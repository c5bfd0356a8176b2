"""What fit prints when it ends (its result, where it is, how to evaluate it) and on Ctrl-C (how to resume)."""

import json
import re
import shlex

import pytest
from helpers.cli import cifar10_e32_args
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lc_lightning.cli import main

SMALL = ["--model.network.init_args.depth=8", "--model.network.init_args.expansion=2", "--trainer.precision=32-true"]


def test_fit_ends_with_the_last_and_best_accuracy_the_run_and_the_command_that_evaluates_it(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    named = "--trainer.logger.init_args.name=my run"  # a path the shell splits: printed quoted
    main(["fit", *cifar10_e32_args(root, *SMALL, "--trainer.max_epochs=3", "--model.optimizer.lr=0.5", named)])
    out = capsys.readouterr().out
    run = tmp_path / "logs" / "my run" / "version_0"
    events = EventAccumulator(str(run))
    events.Reload()
    accuracies = [event.value for event in events.Scalars("val/acc")]
    assert len(accuracies) == 3
    best = max(accuracies)
    summary = re.search(r"val/acc +last ([\d.]+), best ([\d.]+) \(epoch (\d)\)", out)
    assert summary, out
    assert float(summary[1]) == pytest.approx(accuracies[-1], abs=5e-5)
    assert float(summary[1]) == pytest.approx(
        json.loads((run / "status.json").read_text())["metrics"]["val/acc"], abs=5e-5
    )
    assert (float(summary[2]), int(summary[3])) == (pytest.approx(best, abs=5e-5), accuracies.index(best))
    assert "lc-train: fit ended after 3 epochs, 15 steps" in out
    assert "run          'logs/my run/version_0' (tensorboard --logdir 'logs/my run/version_0')" in out
    evaluate = re.search(r"evaluate +(lc-train test .*)", out)[1]
    assert evaluate == "lc-train test --ckpt_path 'logs/my run/version_0/checkpoints/last.ckpt'"
    main([*shlex.split(evaluate)[1:], f"--data.data_dir={root}"])  # the printed command evaluates the run
    assert json.loads((run / "test_0" / "status.json").read_text())["state"] == "finished"


def test_ctrl_c_prints_the_command_that_resumes_the_run(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    ctrl_c = "--trainer.callbacks+={class_path: helpers.interruptions.CtrlCAtStep, init_args: {step: 7}}"  # in epoch 1
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *cifar10_e32_args(root, *SMALL, "--trainer.max_epochs=2", ctrl_c)])
    assert exit_info.value.code == 1
    out = capsys.readouterr().out
    run = "logs/cifar10_e32/version_0"
    assert (
        f"lc-train: interrupted at epoch 1, step 7. Resume from {run}/checkpoints/last.ckpt with:\n"
        f"  lc-train fit --config {run}/config.yaml --ckpt_path last\n"
    ) in out
    assert json.loads((tmp_path / run / "status.json").read_text())["state"] == "interrupted"
    resume = re.search(r"\n  (lc-train fit .*)\n", out)[1]
    main(shlex.split(resume)[1:])  # the printed command finishes the run in its directory
    status = json.loads((tmp_path / run / "status.json").read_text())
    assert (status["state"], status["global_step"]) == ("finished", 10)


def test_ctrl_c_before_the_first_step_says_nothing_was_kept(tiny_cifar10, tmp_path, monkeypatch, capsys):
    root, _ = tiny_cifar10
    monkeypatch.chdir(tmp_path)
    ctrl_c = "--trainer.callbacks+={class_path: helpers.interruptions.CtrlCAtStep, init_args: {step: 0}}"
    with pytest.raises(SystemExit):
        main(["fit", *cifar10_e32_args(root, *SMALL, ctrl_c)])
    assert "lc-train: interrupted before the first training step; nothing was kept" in capsys.readouterr().out
    assert not (tmp_path / "logs" / "cifar10_e32" / "version_0").exists()


def test_a_fit_that_saved_no_checkpoint_says_so_instead_of_an_evaluate_command(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    main(["fit", *cifar10_e32_args(tiny_cifar10[0], *SMALL, "--trainer.max_epochs=0")])
    out = capsys.readouterr().out
    assert "lc-train: fit ended after 0 epochs, 0 steps" in out
    assert out.splitlines()[-1] == "  evaluate     no checkpoint was saved"
