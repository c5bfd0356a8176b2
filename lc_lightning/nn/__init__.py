"""Layers: the LC-Block and its forms, conversion of any model to LC-Blocks, and spatial inits."""

from lc_lightning.nn.convert import LCOptions, convert_to_lc, is_spatial, spatial_convs, spatial_weights
from lc_lightning.nn.init import SPATIAL_INITS, SpatialInit, check_init, init_spatial_
from lc_lightning.nn.lc_block import (
    LC_FORMS,
    LCForm,
    OwnSteps,
    check_expansion,
    check_lc_form,
    check_lc_training,
    combined_weight,
    lc_blocks,
    lc_form,
    lc_parametrization,
    lc_step_scales,
    lc_weights,
    make_lc_block,
    set_lc_form,
)

__all__ = [
    "LC_FORMS",
    "SPATIAL_INITS",
    "LCForm",
    "LCOptions",
    "OwnSteps",
    "SpatialInit",
    "check_expansion",
    "check_init",
    "check_lc_form",
    "check_lc_training",
    "combined_weight",
    "convert_to_lc",
    "init_spatial_",
    "is_spatial",
    "lc_blocks",
    "lc_form",
    "lc_parametrization",
    "lc_step_scales",
    "lc_weights",
    "make_lc_block",
    "set_lc_form",
    "spatial_convs",
    "spatial_weights",
]
