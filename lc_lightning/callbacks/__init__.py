"""Lightning callbacks."""

from lc_lightning.callbacks.fgsm import FGSMAccuracy
from lc_lightning.callbacks.filters import FilterDiversity, FilterImages
from lc_lightning.callbacks.freeze import FreezeSpatialConvs
from lc_lightning.callbacks.status import RecordRunStatus

__all__ = ["FGSMAccuracy", "FilterDiversity", "FilterImages", "FreezeSpatialConvs", "RecordRunStatus"]
