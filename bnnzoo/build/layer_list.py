"""Layer-list bodies: a chain of binary MBConv, skip or basic blocks, one per expanded layer."""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.build.mbconv import BinaryMBConv
from bnnzoo.build.resnet import BinaryBasicBlock
from bnnzoo.dsl.types import Basic, LayerList, MBConv


class LayerListBody(nn.Module):
    """The blocks of a layer-list genotype, with feature taps at the end of each resolution."""

    def __init__(self, body: LayerList, in_channels: int, shortcut: str) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        self.taps: list[int] = []
        self.tap_channels: list[int] = []
        self.tap_reductions: list[int] = []
        channels, reduction = in_channels, 1
        for index, layer in enumerate(body.expanded()):
            stride = getattr(layer, "stride", 1)
            if stride != 1 and index > 0:
                self._add_tap(index - 1, channels, reduction)
            if isinstance(layer, MBConv):
                block = BinaryMBConv(channels, layer.channels, layer.kernel, layer.expansion, stride, shortcut)
            elif isinstance(layer, Basic):
                block = BinaryBasicBlock(channels, layer.channels, stride, layer.downsample)
            else:
                block = nn.Identity()
            blocks.append(block)
            channels = getattr(layer, "channels", channels)
            reduction *= stride
        self._add_tap(len(blocks) - 1, channels, reduction)
        self.blocks = nn.Sequential(*blocks)
        self.out_channels = channels

    def _add_tap(self, block: int, channels: int, reduction: int) -> None:
        self.taps.append(block)
        self.tap_channels.append(channels)
        self.tap_reductions.append(reduction)

    def tap_module(self, tap: int) -> str:
        return f"body.blocks.{self.taps[tap]}"

    def forward(self, x: torch.Tensor, take: set[int] | frozenset[int] = frozenset(), stop: int | None = None):
        """Run the blocks; return the last output and the feature maps at the taps in ``take``."""
        features = []
        last = len(self.blocks) - 1 if stop is None else self.taps[stop]
        for index, block in enumerate(self.blocks[: last + 1]):
            x = block(x)
            if index in self.taps and self.taps.index(index) in take:
                features.append(x)
        return x, features
