"""Layers: the LC-Block, conversion of any model to LC-Blocks, and spatial inits."""

from lc_lightning.nn.convert import convert_to_lc, is_spatial, spatial_convs
from lc_lightning.nn.init import SPATIAL_INITS, SpatialInit, check_init, init_spatial_
from lc_lightning.nn.lc_conv import LCConv2d, check_expansion, set_folded

__all__ = [
    "SPATIAL_INITS",
    "LCConv2d",
    "SpatialInit",
    "check_expansion",
    "check_init",
    "convert_to_lc",
    "init_spatial_",
    "is_spatial",
    "set_folded",
    "spatial_convs",
]
