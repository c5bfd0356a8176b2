"""Networks (plain nn.Modules, called as ``Network(num_classes, in_channels, ...)``)."""

from lc_lightning.models.cifar_resnet import CifarResNet
from lc_lightning.models.timm_net import TimmNet

__all__ = ["CifarResNet", "TimmNet"]
