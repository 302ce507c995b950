"""Small units shared by the blocks: a binary conv with BatchNorm, and the real-valued stem."""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d


class BinaryConvBN(nn.Sequential):
    """A :class:`BinaryConv2d` ("same" padding with +1) followed by BatchNorm."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__()
        padding = dilation * (kernel // 2)
        self.conv = BinaryConv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=padding,
            dilation=dilation,
            groups=groups,
        )
        self.bn = nn.BatchNorm2d(out_channels)


class RealStem(nn.Sequential):
    """The real-valued first convolution and its BatchNorm (no activation: sign follows)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)


def pool_shortcut(stride: int) -> nn.Module:
    """An AvgPool that matches a strided "same" convolution's output size, or the identity."""
    if stride == 1:
        return nn.Identity()
    return nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False)


def repeat_channels(x: torch.Tensor, times: int) -> torch.Tensor:
    """Tile the channels ``times`` times: the parameter-free shortcut of a 1x1 expansion."""
    return x if times == 1 else x.repeat(1, times, 1, 1)
