"""Lightning callbacks."""

from lc_lightning.callbacks.fgsm import FGSMAccuracy
from lc_lightning.callbacks.filters import FilterDiversity, FilterImages
from lc_lightning.callbacks.freeze import FreezeSpatialConvs
from lc_lightning.callbacks.progress import ProgressBar
from lc_lightning.callbacks.record import RecordRun
from lc_lightning.callbacks.requeue import RequeueOnSignal
from lc_lightning.callbacks.summary import SummarizeFit

__all__ = [
    "FGSMAccuracy",
    "FilterDiversity",
    "FilterImages",
    "FreezeSpatialConvs",
    "ProgressBar",
    "RecordRun",
    "RequeueOnSignal",
    "SummarizeFit",
]
