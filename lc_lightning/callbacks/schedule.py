"""When the analysis callbacks run."""

from lightning import Trainer


def analysis_due(trainer: Trainer, every_n_epochs: int) -> bool:
    """True in validate and test, and during fit every ``every_n_epochs`` epochs and on the last
    epoch; never in the sanity check before training."""
    if trainer.sanity_checking:
        return False
    if trainer.state.fn != "fit":
        return True
    epoch = trainer.current_epoch + 1
    return epoch % every_n_epochs == 0 or epoch == trainer.max_epochs
