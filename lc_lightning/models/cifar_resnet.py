"""CIFAR-ResNet (He et al. 2016, option-B shortcuts) and its LC variant ResNet-LC-D-WxE."""

from torch import nn

from lc_lightning.errors import InvalidArgumentError
from lc_lightning.nn import LCForm, LCOptions, SpatialInit


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus shortcut, then ReLU; a 1x1 conv + BN shortcut where the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, kernel_size: int) -> None:
        super().__init__()
        padding = kernel_size // 2
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size, 1, padding, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class CifarResNet(nn.Module):
    """ResNet-D-W for 32x32-sized inputs; with ``expansion=E`` it is ResNet-LC-D-WxE.

    Three stages of basic blocks of widths W, 2W, 4W (stride 2 at the start of stages 2 and 3)
    after a k x k stem conv, then global average pooling and a linear head. Inputs are
    normalised images; the network knows nothing of training.

    Args:
        depth: D = 6n + 2 (8, 14, 20, 32, ...): n basic blocks per stage.
        width: W, the channels of the first stage.
        kernel_size: k (odd), of every spatial conv, with padding k // 2.
        expansion: E >= 1 turns every spatial conv, the stem included, into an LC-Block of E
            random filters per output channel; None keeps plain convolutions (the baseline).
        init: the random init of the spatial filters (see ``lc_lightning.nn.init_spatial_``).
        lc_form: how the LC-Blocks compute: ``folded`` (any training), ``explicit`` (the paper's two
            convolutions), ``preconditioned`` (frozen filters, SGD) or ``gram`` (learned filters, SGD).
        normalized_lc_step: scale every LC-Block's step by 1 / (c_out E var(S)), so that a larger E
            is not a larger step on W.

    The last four are the LC options every network shares: ``lc_lightning.nn.LCOptions`` states
    them in full. Raises InvalidArgumentError for an invalid argument.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        depth: int = 20,
        width: int = 16,
        kernel_size: int = 3,
        expansion: int | None = None,
        init: SpatialInit = "kaiming_uniform",
        lc_form: LCForm = "folded",
        normalized_lc_step: bool = False,
    ) -> None:
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise InvalidArgumentError(
                f"depth must be 6n + 2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth}"
            )
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise InvalidArgumentError(f"kernel_size must be odd and >= 1, got {kernel_size}")
        if width < 1:
            raise InvalidArgumentError(f"width must be >= 1, got {width}")
        lc_options = LCOptions(expansion, init, lc_form, normalized_lc_step)
        blocks_per_stage = (depth - 2) // 6
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size, 1, kernel_size // 2, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages, channels = [], width
        for stage, stage_width in enumerate((width, 2 * width, 4 * width)):
            blocks = []
            for index in range(blocks_per_stage):
                stride = 2 if stage > 0 and index == 0 else 1
                blocks.append(BasicBlock(channels, stage_width, stride, kernel_size))
                channels = stage_width
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(channels, num_classes)
        lc_options.build(self, init_converted=False)

    def forward(self, x):
        return self.fc(self.pool(self.stages(self.stem(x))))
