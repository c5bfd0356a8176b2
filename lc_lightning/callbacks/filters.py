"""Filter statistics of the combined filters, logged at the end of validation."""

from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning import Callback, LightningModule, Trainer
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch.nn import functional as F
from torchvision.utils import make_grid

from lc_lightning.analysis import combined_filters, normalized_entropy, spatial_variance
from lc_lightning.callbacks.schedule import analysis_due, check_every_n_epochs

if TYPE_CHECKING:
    from matplotlib.figure import Figure


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


def heatmap_figure(heatmap: torch.Tensor, title: str) -> "Figure":
    """A k x k heatmap as a figure: a colour map from its smallest to its largest value with a
    colour bar for the scale, and each cell's share of the total in % written on it."""
    from matplotlib.figure import Figure  # imported here: it adds a second to every lc-train start

    values = heatmap.detach().double().cpu()
    shares = 100 * values / values.sum().clamp_min(torch.finfo(torch.float64).tiny)
    figure = Figure(figsize=(4.2, 3.4), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    shown = axes.imshow(shares.numpy(), cmap="viridis")
    figure.colorbar(shown, ax=axes, label="share of the variance (%)")
    middle = (shares.max() + shares.min()) / 2
    for (row, column), share in np.ndenumerate(shares.numpy()):
        colour = "black" if share > middle else "white"  # legible on viridis's light and dark ends
        axes.text(column, row, f"{share:.1f}", ha="center", va="center", color=colour, fontsize=8)
    axes.set_title(title, fontsize=9)
    axes.set_xticks([])
    axes.set_yticks([])
    return figure


class FilterImages(Callback):
    """TensorBoard images of the combined filters: ``filters/first_layer``, a grid of the first
    spatial layer's filters (as in the paper's appendix), and ``filters/spatial_variance_<k>x<k>``,
    the spatial variance heatmap of all spatial layers per kernel size (the paper's Fig. 7b), each
    cell's share of the variance in % on a colour scale. Logged at the end of validation on the schedule of
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
        figures = {}
        for (k_h, k_w), heatmap in spatial_variance(filters.values()).items():
            title = f"spatial variance of the {k_h}x{k_w} filters, epoch {trainer.current_epoch}"
            figures[f"filters/spatial_variance_{k_h}x{k_w}"] = heatmap_figure(heatmap, title)
        for logger in loggers:
            for tag, image in images.items():
                logger.experiment.add_image(tag, image, trainer.global_step)
            for tag, figure in figures.items():
                logger.experiment.add_figure(tag, figure, trainer.global_step, close=False)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)

    def on_test_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._draw(trainer, pl_module)
