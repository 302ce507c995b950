"""The refined binary MBConv block, ``MB k (e)``.

Layout (``C_in`` -> ``E = e * C_in`` -> ``C_out``)::

    h = RPReLU(BN(BinConv1x1(x))        + tile(x, e))          # expand
    h = RPReLU(BN(BinGroupConvkxk(h))   + AvgPool_s(h))        # k x k group conv, g = 2, stride s
    y = RPReLU(BN(BinConv1x1(h))        + shortcut(x))         # project

From the supplement: the binary k x k group convolution with g = 2 and e as the expansion, the
stride-2 reduction block, and its shortcut: AvgPool of the block input, filled up to ``C_out``
channels by ``partial_duplicate`` (default), ``zero`` or ``global_average`` (Sec. 1, Fig. 1),
added to the output of the second 1x1 convolution. Our own choices, since the main paper is not
available: a parameter-free shortcut around *each* binary convolution (channel tiling around the
expansion, AvgPool around the group conv) so that no information is lost through sign(); BatchNorm
after every convolution; RPReLU (ReActNet) after every addition; the same fill-up shortcut without
pooling when a stride-1 block widens the channels.
"""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.build.binary import RPReLU
from bnnzoo.build.shortcuts import ReductionShortcut
from bnnzoo.build.units import BinaryConvBN, pool_shortcut, repeat_channels
from bnnzoo.dsl.spaces import MBCONV_GROUPS


class BinaryMBConv(nn.Module):
    """A binary MBConv block; see the module docstring for the exact layout."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        expansion: int,
        stride: int = 1,
        shortcut: str = "partial_duplicate",
    ) -> None:
        super().__init__()
        hidden = in_channels * expansion
        self.expansion = expansion
        self.expand = BinaryConvBN(in_channels, hidden, 1)
        self.expand_act = RPReLU(hidden)
        self.group_conv = BinaryConvBN(hidden, hidden, kernel, stride, groups=MBCONV_GROUPS)
        self.group_shortcut = pool_shortcut(stride)
        self.group_act = RPReLU(hidden)
        self.project = BinaryConvBN(hidden, out_channels, 1)
        self.shortcut = (
            ReductionShortcut(in_channels, out_channels, stride, shortcut)
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.project_act = RPReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand_act(self.expand(x) + repeat_channels(x, self.expansion))
        h = self.group_act(self.group_conv(h) + self.group_shortcut(h))
        return self.project_act(self.project(h) + self.shortcut(x))
