"""A DataModule whose dataset is missing on one rank only, as on a node without the data (importable by class
path: ``helpers.faulty_data.MissingOnOneRank``)."""

from pathlib import Path

from lc_lightning.data import FashionMNISTDataModule


class MissingOnOneRank(FashionMNISTDataModule):
    """Fashion-MNIST, except that the process of global rank ``missing_rank`` finds no dataset."""

    def __init__(self, missing_rank: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.missing_rank = missing_rank

    def make_dataset(self, train: bool, transform):
        if self.trainer.global_rank == self.missing_rank:
            raise self.not_found(Path(self.data_dir) / "node-local", "absent on this node")
        return super().make_dataset(train, transform)
