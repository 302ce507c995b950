"""The BNAS op set and template units, as the official BNAS code builds them (gistvision/bnas).

A binary convolution is BNAS's unit (its ``BinReLUConvBN``): BatchNorm on the input, sign, the
binary convolution, ReLU. Pooling is real-valued and free of multiplications; ``none`` is the
zero op. The reduction cells' residual is BatchNorm and a real 2x2 stride-2 convolution with a
bias. See docs/blocks.md for each remaining difference from the official code.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.dsl.spaces import reduced_size


class Zero(nn.Module):
    """The ``none`` op: zeros with the output shape of a strided op."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x * 0 rather than zeros: the input still gets a (zero) gradient, as in DARTS and BNAS
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def counted_batchnorm(channels: int, affine: bool = True) -> nn.BatchNorm2d:
    """A BatchNorm whose affine weight and bias count in Params (the BNAS template's; docs/profiling.md).

    A plain ``nn.BatchNorm2d`` marked by an attribute, so that FX keeps treating it as a leaf.
    """
    norm = nn.BatchNorm2d(channels, affine=affine)
    norm.counted_in_params = True
    return norm


def is_counted_batchnorm(module: nn.Module) -> bool:
    """True for a :func:`counted_batchnorm` with affine parameters."""
    return isinstance(module, nn.BatchNorm2d) and module.affine and getattr(module, "counted_in_params", False)


class NormBinaryConv(nn.Sequential):
    """BNAS's binary unit: BatchNorm, sign, binary ``kernel`` x ``kernel`` conv (padded with +1), ReLU.

    The BatchNorm before the sign takes the place of a learnable threshold, so the conv has none.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        dilation: int = 1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        self.bn = counted_batchnorm(in_channels, affine)
        self.conv = BinaryConv2d(
            in_channels,
            out_channels,
            kernel,
            stride=stride,
            padding=dilation * (kernel // 2),
            dilation=dilation,
            learnable_threshold=False,
        )
        self.act = nn.ReLU()


def pad_to_even(x: torch.Tensor) -> torch.Tensor:
    """Pad an odd height or width with one zero row or column at the bottom or right."""
    height, width = x.shape[-2:]
    pad_h, pad_w = 2 * reduced_size(height) - height, 2 * reduced_size(width) - width
    return F.pad(x, (0, pad_w, 0, pad_h)) if pad_h or pad_w else x


torch.fx.wrap("pad_to_even")  # its padding depends on the input size: one call in an FX graph


class ReductionResidual(nn.Module):
    """The reduction cells' residual: BatchNorm, then a real 2x2 stride-2 conv with a bias.

    An odd height or width is padded with one zero row or column at the bottom or right first, so
    the output is ``reduced_size`` of the input, as for every strided op of the cell.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.bn = counted_batchnorm(in_channels)
        self.conv = nn.Conv2d(in_channels, out_channels, 2, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(pad_to_even(self.bn(x)))


OpFactory = Callable[[int, int], nn.Module]

OPS: dict[str, OpFactory] = {
    "none": lambda channels, stride: Zero(stride),
    "max_pool_3x3": lambda channels, stride: nn.MaxPool2d(3, stride, padding=1),
    "avg_pool_3x3": lambda channels, stride: nn.AvgPool2d(3, stride, padding=1, count_include_pad=False),
    "bin_conv_3x3": lambda channels, stride: NormBinaryConv(channels, channels, 3, stride),
    "bin_conv_5x5": lambda channels, stride: NormBinaryConv(channels, channels, 5, stride),
    "bin_dil_conv_3x3": lambda channels, stride: NormBinaryConv(channels, channels, 3, stride, dilation=2),
    "bin_dil_conv_5x5": lambda channels, stride: NormBinaryConv(channels, channels, 5, stride, dilation=2),
}


def make_op(name: str, channels: int, stride: int) -> nn.Module:
    """Build BNAS op ``name`` on ``channels`` channels with ``stride``."""
    return OPS[name](channels, stride)


def preprocessing(in_channels: int, channels: int, reduction_prev: bool) -> NormBinaryConv:
    """Bring a cell input to ``channels``: a binary 1x1 conv, or a binary 3x3 stride-2 conv (BatchNorm
    without affine parameters) for c_{k-2} when the previous cell was a reduction, as in BNAS."""
    if reduction_prev:
        return NormBinaryConv(in_channels, channels, 3, stride=2, affine=False)
    return NormBinaryConv(in_channels, channels, 1)
