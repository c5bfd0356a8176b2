"""Networks (plain nn.Modules, called as ``Network(num_classes, in_channels, ...)``)."""

from lc_lightning.models.cifar_resnet import CifarResNet

__all__ = ["CifarResNet"]
