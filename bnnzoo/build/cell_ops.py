"""The BNAS op set, shared by the final networks and the search supernet.

Pooling is real-valued and free of multiplications; every convolution is binary (weights and
activations), followed by BatchNorm. ``none`` is the zero op.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.units import BinaryConvBN


class Zero(nn.Module):
    """The ``none`` op: zeros with the output shape of a strided op."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * 0 rather than zeros: the input still gets a (zero) gradient, as in DARTS and BNAS
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Halve the resolution with two binary 1x1 stride-2 convs on offset grids (DARTS), then BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        half = out_channels // 2
        self.conv_a = BinaryConv2d(in_channels, half, 1, stride=2)
        self.conv_b = BinaryConv2d(in_channels, out_channels - half, 1, stride=2)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shifted = nn.functional.pad(x[:, :, 1:, 1:], (0, 1, 0, 1), value=1.0)
        return self.bn(torch.cat([self.conv_a(x), self.conv_b(shifted)], dim=1))


OpFactory = Callable[[int, int], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda channels, stride: Zero(stride),
    "max_pool_3x3": lambda channels, stride: nn.MaxPool2d(3, stride, padding=1),
    "avg_pool_3x3": lambda channels, stride: nn.AvgPool2d(3, stride, padding=1, count_include_pad=False),
    "bin_conv_3x3": lambda channels, stride: BinaryConvBN(channels, channels, 3, stride),
    "bin_conv_5x5": lambda channels, stride: BinaryConvBN(channels, channels, 5, stride),
    "bin_dil_conv_3x3": lambda channels, stride: BinaryConvBN(channels, channels, 3, stride, dilation=2),
    "bin_dil_conv_5x5": lambda channels, stride: BinaryConvBN(channels, channels, 5, stride, dilation=2),
}


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """Build BNAS op ``name`` on ``channels`` channels with ``stride``."""
    return OPS[name](channels, stride)
