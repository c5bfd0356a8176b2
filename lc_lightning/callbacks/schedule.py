"""When the analysis callbacks run."""

from lightning import Trainer

from lc_lightning.errors import InvalidArgumentError


def check_every_n_epochs(every_n_epochs: int) -> None:
    """Raise InvalidArgumentError unless ``every_n_epochs`` >= 1."""
    if every_n_epochs < 1:
        raise InvalidArgumentError(f"every_n_epochs must be >= 1, got {every_n_epochs}")


def analysis_due(trainer: Trainer, every_n_epochs: int) -> bool:
    """True in validate and test, and during fit every ``every_n_epochs`` epochs and on the last
    epoch; never in the sanity check before training."""
    if trainer.sanity_checking:
        return False
    if trainer.state.fn != "fit":
        return True
    epoch = trainer.current_epoch + 1
    return epoch % every_n_epochs == 0 or epoch == trainer.max_epochs
