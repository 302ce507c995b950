"""The MBConv-space supernet: every layer mixes binary MBConv candidates (and skip) with softmax(alpha).

The candidates are those of ``bnnzoo.dsl.spaces`` (kernels x expansions, plus skip where the shape
is kept), on the macro skeleton of the zoo's MBConv models; each candidate is the final network's
own :class:`~bnnzoo.build.mbconv.BinaryMBConv`, so the search sees exactly the binarization of
the models it derives.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from bnnzoo.build.mbconv import BinaryMBConv
from bnnzoo.build.units import RealStem
from bnnzoo.dsl.spaces import (
    DEFAULT_SHORTCUT,
    MBCONV_SEARCH_EXPANSIONS,
    MBCONV_SEARCH_KERNELS,
    MBCONV_STAGE_DEPTHS,
    MBCONV_STAGE_STRIDES,
)
from bnnzoo.errors import SearchError
from bnnzoo.search.mixing import ArchParameters

Candidate = tuple[int, int] | None  # (kernel, expansion); None is skip


class MixedLayer(nn.Module):
    """One searchable layer: the weighted sum of every candidate block's output."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, candidates: Sequence[Candidate], shortcut: str
    ) -> None:
        super().__init__()
        self.candidates = list(candidates)
        self.blocks = nn.ModuleList(
            nn.Identity() if c is None else BinaryMBConv(in_channels, out_channels, c[0], c[1], stride, shortcut)
            for c in self.candidates
        )

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        out = 0.0
        for weight, block in zip(weights, self.blocks):
            out = out + weight * block(x)
        return out


class MBConvSupernet(nn.Module):
    """Stem, stages of mixed layers (the first of each carries the stride), pooling, classifier."""

    space = "mbconv"

    def __init__(
        self,
        widths: Sequence[int] = (16, 24, 32, 64),
        depths: Sequence[int] = MBCONV_STAGE_DEPTHS,
        strides: Sequence[int] = MBCONV_STAGE_STRIDES,
        stem_channels: int = 16,
        kernels: Sequence[int] = MBCONV_SEARCH_KERNELS,
        expansions: Sequence[int] = MBCONV_SEARCH_EXPANSIONS,
        num_classes: int = 10,
        in_chans: int = 3,
        input_size: int = 32,
        shortcut: str = DEFAULT_SHORTCUT,
    ) -> None:
        super().__init__()
        if list(widths) != sorted(widths) or widths[0] < stem_channels:
            raise SearchError(
                f"stage widths must not narrow (stem {stem_channels}, widths {tuple(widths)}): "
                "an MB block's shortcut can only keep or add channels"
            )
        if not len(widths) == len(depths) == len(strides):
            raise SearchError("widths, depths and strides need one entry per stage")
        self.widths, self.depths, self.strides = tuple(widths), tuple(depths), tuple(strides)
        self.stem_channels, self.num_classes, self.in_chans = stem_channels, num_classes, in_chans
        self.input_size, self.shortcut = input_size, shortcut
        blocks: list[Candidate] = [(k, e) for k in kernels for e in expansions]
        self.candidates: list[Candidate] = [*blocks, None]
        self.stem = RealStem(in_chans, stem_channels, 3, 1)
        self.layers = nn.ModuleList()
        allowed = []
        channels = stem_channels
        for width, depth, stride in zip(self.widths, self.depths, self.strides):
            for index in range(depth):
                layer_stride = stride if index == 0 else 1
                can_skip = layer_stride == 1 and channels == width
                options = self.candidates if can_skip else blocks
                self.layers.append(MixedLayer(channels, width, layer_stride, options, shortcut))
                allowed.append([True] * len(blocks) + [can_skip])
                channels = width
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        names = ["skip" if c is None else f"MB{c[0]}({c[1]})" for c in self.candidates]
        points = [f"layer {index}" for index in range(len(self.layers))]
        self.alpha = ArchParameters(
            len(self.layers), len(self.candidates), torch.tensor(allowed), "layers", points, names
        )

    def arch_modules(self) -> list[ArchParameters]:
        return [self.alpha]

    def binary_weights(self) -> list[nn.Parameter]:
        return [m.weight for m in self.modules() if getattr(m, "is_binary", False)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.alpha.weights()
        x = self.stem(x)
        for index, layer in enumerate(self.layers):
            x = layer(x, weights[index, : len(layer.candidates)])
        return self.fc(torch.flatten(self.pool(x), 1))
