"""The best val/acc of a fit and the epoch it was reached in (status.json's best_val_acc and best_epoch, what the
fit's summary prints) are the best of every epoch the run validated, before and after a resume."""

import json
import shutil
from pathlib import Path

import torch
from helpers.cli import SMALL, added_callback, lc_train_output, tiny_cifar_args
from helpers.runs import step_values
from lightning import Callback

from lc_lightning.run_directory import RunDirectory

VALIDATION_IMAGES = 8
CORRECT = [2, 5, 3, 4, 6, 1]
"""How many validation images each epoch classifies right: better, worse, (interrupted, resumed) worse than the
best before the interruption, better, worse."""
INTERRUPTED_AT_STEP = 3  # one step an epoch: as epoch 3 starts


class ValidationAccuracyPlan(Callback):
    """In a fit's validation of epoch e, make the network classify exactly the first ``correct[e]`` validation
    images right and every other one wrong (its logits replaced by a one-hot vector at the label or the next
    class), so that val/acc goes up and down as planned; and as each training epoch starts, copy the run's
    status.json as the earlier epochs left it to ``<history>/after_epoch_<e - 1>.json``."""

    def __init__(self, correct: list[int], history: str) -> None:
        self.correct = correct
        self.history = Path(history)
        self._labels: torch.Tensor | None = None
        self._epoch = 0
        self._seen = 0
        self._hook = None

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        status = Path(trainer.default_root_dir) / "status.json"
        if trainer.current_epoch > 0 and status.is_file():
            self.history.mkdir(exist_ok=True)
            shutil.copy(status, self.history / f"after_epoch_{trainer.current_epoch - 1}.json")

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking:
            self._epoch, self._seen = trainer.current_epoch, 0
            self._hook = pl_module.network.register_forward_hook(self._planned_logits)

    def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0) -> None:
        self._labels = batch[1]

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None

    def _planned_logits(self, network, inputs, logits: torch.Tensor) -> torch.Tensor:
        right = torch.arange(self._seen, self._seen + len(self._labels)) < self.correct[self._epoch]
        self._seen += len(self._labels)
        planned = torch.where(right.to(self._labels.device), self._labels, (self._labels + 1) % logits.shape[1])
        return torch.nn.functional.one_hot(planned, logits.shape[1]).to(logits.dtype) * 10


def statuses(run: RunDirectory, history: Path) -> list[dict]:
    """The status.json the run had after each epoch (the last one as it is now)."""
    after = sorted(history.glob("after_epoch_*.json"), key=lambda path: int(path.stem.rpartition("_")[2]))
    return [json.loads(path.read_text()) for path in after] + [json.loads((run.path / "status.json").read_text())]


def test_the_best_accuracy_and_its_epoch_are_kept_across_epochs_and_a_resume(
    tiny_cifar10, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    history = tmp_path / "history"
    args = tiny_cifar_args(
        tiny_cifar10[0], *SMALL, "--model.network.init_args.width=4", "--data.train_subset=8",
        f"--data.val_subset={VALIDATION_IMAGES}", f"--trainer.max_epochs={len(CORRECT)}",
        added_callback("test_summary_best.ValidationAccuracyPlan", correct=CORRECT, history=str(history)),
        added_callback("helpers.interruptions.CtrlCAtStep", step=INTERRUPTED_AT_STEP),
    )  # fmt: skip
    assert lc_train_output(capsys, "fit", *args)[0] == 1  # Ctrl-C
    run = RunDirectory(tmp_path / "logs" / "cifar10_e32" / "version_0")
    assert (run.status().state, run.status().epoch) == ("interrupted", INTERRUPTED_AT_STEP)
    status, out, _ = lc_train_output(capsys, "fit", "--config", str(run.config_file), "--ckpt_path", "last")
    assert status == 0
    logged = [values[-1] for _, values in sorted(step_values(run.path, "val/acc").items())]
    assert logged == [correct / VALIDATION_IMAGES for correct in CORRECT]  # as planned, one value an epoch
    recorded = statuses(run, history)
    assert len(recorded) == len(CORRECT)
    for epoch, status in enumerate(recorded):
        best = max(logged[: epoch + 1])
        assert (status["best_val_acc"], status["best_epoch"]) == (best, logged.index(best)), epoch
    best = max(logged)
    assert f"val/acc      last {logged[-1]:.4f}, best {best:.4f} (epoch {logged.index(best)})" in out
