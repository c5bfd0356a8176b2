"""FGSMAccuracy: robust accuracy under a light FGSM attack, measured on the validation set."""

import torch
from lightning import Callback, LightningModule, Trainer

from lc_lightning.analysis.fgsm import check_epsilon, fgsm_robust
from lc_lightning.callbacks.schedule import analysis_due, check_every_n_epochs


class FGSMAccuracy(Callback):
    """Logs ``val/fgsm_acc`` (and ``test/fgsm_acc``): the fraction of images classified correctly
    both before and after an l_inf FGSM attack of ``epsilon`` in [0, 1] pixel space.

    During fit it runs every ``every_n_epochs`` epochs and on the last one (not in the sanity
    check); in ``validate`` and ``test`` always. The attack runs on the batches the validation
    loop already loads, with the model in eval mode and under the run's precision (e.g.
    bf16-mixed), inside Lightning's inference mode. Counts are summed over all DDP ranks, so
    the value is that of the whole validation set (each image once: lc-train's DataModules split
    the evaluation splits over the ranks without repeating images). ``epsilon`` is logged as the
    hyperparameter ``fgsm_epsilon``.

    Cost: two forward passes and one forward-backward pass per batch (docs/analysis.md, "The cost
    of FGSM", has it measured against training). Limit it with ``every_n_epochs`` or the trainer's
    ``limit_val_batches``.
    """

    def __init__(self, epsilon: float = 1 / 255, every_n_epochs: int = 1) -> None:
        check_epsilon(epsilon)
        check_every_n_epochs(every_n_epochs)
        self.epsilon = epsilon
        self.every_n_epochs = every_n_epochs
        self._counts = torch.zeros(2, dtype=torch.long)  # robust, seen

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if trainer.logger is not None:
            trainer.logger.log_hyperparams({"fgsm_epsilon": self.epsilon})

    def _start(self, trainer: Trainer) -> None:
        self._counts = torch.zeros(2, dtype=torch.long, device=trainer.strategy.root_device)

    def _update(self, trainer: Trainer, pl_module: LightningModule, batch) -> None:
        if analysis_due(trainer, self.every_n_epochs):
            images, targets = batch
            with trainer.precision_plugin.forward_context():
                robust = fgsm_robust(pl_module, images, targets, self.epsilon)
            self._counts += torch.stack([robust.sum(), torch.tensor(robust.numel(), device=robust.device)])

    def _log(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if analysis_due(trainer, self.every_n_epochs):
            robust, seen = trainer.strategy.reduce(self._counts, reduce_op="sum").tolist()
            pl_module.log(f"{stage}/fgsm_acc", robust / max(seen, 1))

    def on_validation_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(trainer, pl_module, batch)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._start(trainer)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._update(trainer, pl_module, batch)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module, "test")
