"""Lightning callbacks."""

from lc_lightning.callbacks.freeze import FreezeSpatialConvs

__all__ = ["FreezeSpatialConvs"]
