"""Pure analysis functions (tensors in, numbers out, no Lightning): FGSM, filter statistics."""

from lc_lightning.analysis.entropy import filter_variance_entropy, normalized_entropy, randomness_threshold
from lc_lightning.analysis.fgsm import fgsm_images, fgsm_robust
from lc_lightning.analysis.filters import combined_filters
from lc_lightning.analysis.spatial import spatial_variance

__all__ = [
    "combined_filters",
    "fgsm_images",
    "fgsm_robust",
    "filter_variance_entropy",
    "normalized_entropy",
    "randomness_threshold",
    "spatial_variance",
]
