"""The binary ResNet basic block of the XNOR-Net and Bi-Real ResNet-18 baselines (CIFAR variants).

Each of the two binary 3x3 convolutions has its own shortcut, as in Bi-Real Net::

    h = RPReLU(BN(BinConv3x3_s(x)) + downsample(x))
    y = RPReLU(BN(BinConv3x3(h))   + h)

``downsample`` is the identity when the shape is kept, otherwise AvgPool (stride s), then a 1x1
convolution, binary (XNOR-Net) or real-valued (Bi-Real Net), then BatchNorm. The op counts are
those of a strided 1x1 convolution either way. RPReLU is our choice, as in the MBConv block.
"""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d, RPReLU
from bnnzoo.build.units import BinaryConvBN, pool_shortcut


class BinaryBasicBlock(nn.Module):
    """Two binary 3x3 convolutions, each with a shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, downsample: str = "binary") -> None:
        super().__init__()
        self.conv1 = BinaryConvBN(in_channels, out_channels, 3, stride)
        self.act1 = RPReLU(out_channels)
        self.conv2 = BinaryConvBN(out_channels, out_channels, 3)
        self.act2 = RPReLU(out_channels)
        if stride == 1 and in_channels == out_channels:
            self.downsample: nn.Module = nn.Identity()
        else:
            conv_cls = BinaryConv2d if downsample == "binary" else nn.Conv2d
            self.downsample = nn.Sequential(
                pool_shortcut(stride),
                conv_cls(in_channels, out_channels, 1, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act1(self.conv1(x) + self.downsample(x))
        return self.act2(self.conv2(h) + h)
