"""A callback that interrupts a run the way a stopped job does (importable by class path)."""

from lightning import Callback


class StopAfterEpoch(Callback):
    """Stop fit after training epoch ``epoch`` (counted from 0), as if the job ended there;
    the epoch's checkpoints are still written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch:
            trainer.should_stop = True
