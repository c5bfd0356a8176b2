"""Filter statistics of the combined filters, logged at the end of validation."""

import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.nn import functional as F
from torchvision.utils import make_grid

from lc_lightning.analysis import combined_filters, normalized_entropy, spatial_variance
from lc_lightning.callbacks.schedule import analysis_due, check_every_n_epochs


class FilterDiversity(Callback):
    """Logs the normalised filter variance entropy of the combined filters (see
    ``lc_lightning.analysis.normalized_entropy``) of the first and the last spatial layer as
    ``filters/entropy_first`` and ``filters/entropy_last``; with ``all_layers`` also every
    spatial layer's as ``filters/entropy/<layer>``. >= 1 looks random, 0 is one repeated
    pattern. Runs at the end of validation, on the schedule of ``FGSMAccuracy``
    (``every_n_epochs`` during fit, always in validate and test). Cheap: one small SVD per layer.
    """

    def __init__(self, all_layers: bool = False, every_n_epochs: int = 1) -> None:
        check_every_n_epochs(every_n_epochs)
        self.all_layers = all_layers
        self.every_n_epochs = every_n_epochs

    def _log(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not analysis_due(trainer, self.every_n_epochs):
            return
        filters = combined_filters(pl_module)
        names = list(filters)
        values = {"filters/entropy_first": filters[names[0]], "filters/entropy_last": filters[names[-1]]}
        if self.all_layers:
            values.update({f"filters/entropy/{name}": weight for name, weight in filters.items()})
        for key, weight in values.items():
            pl_module.log(key, normalized_entropy(weight))

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._log(trainer, pl_module)


def filter_grid(weight: torch.Tensor, scale: int = 8) -> torch.Tensor:
    """An image (3, H, W) in [0, 1] of a layer's filters (c_out, c_in, k, k), one tile per filter.

    With 3 input channels each filter is one RGB tile (as the paper's appendix shows the first
    layer); otherwise each 2-D kernel is a grey tile. Every tile is scaled to [0, 1] on its
    own and enlarged ``scale`` times (nearest neighbour) so a 3 x 3 kernel is visible.
    """
    tiles = weight.detach().float().cpu()
    if tiles.shape[1] != 3:
        tiles = tiles.flatten(0, 1).unsqueeze(1)
    tiles = F.interpolate(tiles, scale_factor=scale, mode="nearest")
    return make_grid(tiles, nrow=16, normalize=True, scale_each=True, pad_value=1.0)


def heatmap_image(heatmap: torch.Tensor, scale: int = 32) -> torch.Tensor:
    """A grey image (1, k*scale, k*scale) of a k x k heatmap, 0 black to its maximum white."""
    image = heatmap.detach().float().cpu() / heatmap.max().clamp_min(torch.finfo(torch.float32).tiny)
    return F.interpolate(image[None, None], scale_factor=scale, mode="nearest")[0]


class FilterImages(Callback):
    """TensorBoard images of the combined filters: ``filters/first_layer``, a grid of the first
    spatial layer's filters (as in the paper's appendix), and ``filters/spatial_variance_<k>x<k>``,
    the spatial variance heatmap of all spatial layers per kernel size (the paper's Fig. 7b;
    white is the largest variance). Logged at the end of validation on the schedule of
    ``FGSMAccuracy``, by rank 0, when the run logs to TensorBoard (otherwise nothing is drawn).
    """

    def __init__(self, every_n_epochs: int = 1) -> None:
        check_every_n_epochs(every_n_epochs)
        self.every_n_epochs = every_n_epochs

    @rank_zero_only
    def _draw(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not analysis_due(trainer, self.every_n_epochs):
            return
        loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
        if not loggers:
            return
        filters = combined_filters(pl_module)
        images = {"filters/first_layer": filter_grid(next(iter(filters.values())))}
        for (k_h, k_w), heatmap in spatial_variance(filters.values()).items():
            images[f"filters/spatial_variance_{k_h}x{k_w}"] = heatmap_image(heatmap)
        for logger in loggers:
            for tag, image in images.items():
                logger.experiment.add_image(tag, image, trainer.global_step)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)
