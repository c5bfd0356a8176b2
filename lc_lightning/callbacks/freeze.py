"""FreezeSpatialConvs: spatial filters stay frozen at their random initialisation."""

import hashlib

import torch
from lightning import Callback, LightningModule, Trainer

from lc_lightning.nn import spatial_weights


def _digest(tensor: torch.Tensor) -> str:
    """A hash of the tensor's exact bytes (bitwise identity, without keeping a copy)."""
    data = tensor.detach().contiguous().cpu().flatten().view(torch.uint8)
    return hashlib.blake2b(data.numpy().tobytes(), digest_size=16).hexdigest()


class FreezeSpatialConvs(Callback):
    """Freeze every spatial weight: plain convs with a kernel > 1 and the LC-Blocks' S (``spatial_weights``).

    At ``setup`` (before the optimizer is built) their ``requires_grad`` is set to False,
    so the optimizer never sees them: no updates, no weight decay. Pointwise, BN and FC
    parameters stay trainable. At the start of fit (after a checkpoint is restored) the
    callback checks that no optimizer holds a frozen weight and records a hash of each; at
    the end of fit it raises RuntimeError if any frozen weight changed bitwise. The weights
    are saved in checkpoints like any other parameter.
    """

    def __init__(self) -> None:
        self._digests: dict[str, str] = {}

    @staticmethod
    def frozen_weights(module: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
        """The spatial weights this callback freezes, by qualified parameter name."""
        return spatial_weights(module)

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if stage == "fit":
            for weight in self.frozen_weights(pl_module).values():
                weight.requires_grad_(False)

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        frozen = self.frozen_weights(pl_module)
        frozen_ids = {id(weight) for weight in frozen.values()}
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if any(id(p) in frozen_ids for p in group["params"]):
                    raise RuntimeError(
                        "FreezeSpatialConvs: the optimizer holds frozen spatial weights; build it "
                        "from the parameters that require grad only"
                    )
        self._digests = {name: _digest(weight) for name, weight in frozen.items()}

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        frozen = self.frozen_weights(pl_module)
        changed = [name for name, digest in self._digests.items() if _digest(frozen[name]) != digest]
        if changed:
            raise RuntimeError(f"FreezeSpatialConvs: frozen spatial weights changed during fit: {', '.join(changed)}")
