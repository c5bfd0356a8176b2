"""Any timm CNN, with plain spatial convolutions or LC-Blocks (ResNet-18d-LC of the paper's ImageNet runs)."""

import difflib

import timm
from torch import nn

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn import LCForm, LCOptions, SpatialInit


def _check_model_name(name: str) -> None:
    """Raise InvalidArgumentError, with close matches, unless timm has an architecture ``name``."""
    if not timm.is_model(name):
        suggestions = difflib.get_close_matches(name.lower(), timm.list_models(), n=5)
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        raise InvalidArgumentError(f"unknown timm model {name!r}{hint} (timm.list_models() lists every architecture)")


class TimmNet(nn.Module):
    """A timm model built from scratch (``pretrained=False``); with ``expansion=E`` its spatial convs are LC-Blocks.

    Works for any timm CNN, e.g. the paper's Figure 1 models (resnet18, resnet34, resnet50,
    resnet101, resnet50d, wide_resnet50_2, resnext50_32x4d, mobilenetv2_100,
    mobilenetv3_large_100) and resnet18d, the paper's ImageNet model and the default.
    ``timm.create_model(name, num_classes=num_classes, in_chans=in_channels)`` builds it; it is
    held as ``model`` and ``forward`` returns its logits.

    ``expansion=None`` keeps plain convolutions (the baseline); an integer E >= 1 turns every
    dense spatial conv (kernel > 1, groups == 1), the stem included, into an LC-Block of
    expansion E; grouped and depthwise convolutions stay plain convolutions. ``init`` names the
    random init of every spatial filter in both cases, the plain grouped/depthwise ones included;
    1 x 1 convs, BN and the classifier keep timm's init (timm's ResNets zero-initialise the last
    BN of every residual block).

    Inputs are normalised images of any size timm accepts, CIFAR-sized 32 x 32 included: the
    ImageNet stem is kept, so the downsampling by 32 of a ResNet leaves 1 x 1 feature maps at
    32 x 32 (the paper's Figure 1 trains these models on CIFAR-10 this way).

    Args:
        name: the timm architecture (``timm.list_models()``), e.g. resnet18d or resnet50.
        expansion: E >= 1 makes every dense spatial conv an LC-Block of E random filters per
            output channel; None keeps plain convolutions (the baseline).
        init: the random init of every spatial filter (see ``lc_lightning.nn.init_spatial_``).
        lc_form: how the LC-Blocks compute: ``folded`` (any training), ``explicit`` (the paper's two
            convolutions), ``preconditioned`` (frozen filters, SGD) or ``gram`` (learned filters, SGD).
        normalized_lc_step: scale every LC-Block's step by 1 / (c_out E var(S)), so that a larger E
            is not a larger step on W.

    The last four are the LC options every network shares: ``lc_lightning.nn.LCOptions`` states
    them in full. Raises InvalidArgumentError for an unknown model name (suggesting close matches)
    and an invalid expansion, init or lc_form.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        name: str = "resnet18d",
        expansion: int | None = None,
        init: SpatialInit = "kaiming_uniform",
        lc_form: LCForm = "folded",
        normalized_lc_step: bool = False,
    ) -> None:
        super().__init__()
        lc_options = LCOptions(expansion, init, lc_form, normalized_lc_step)
        _check_model_name(name)
        self.model = timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_channels)
        lc_options.build(self.model, init_converted=True)

    def forward(self, x):
        return self.model(x)
