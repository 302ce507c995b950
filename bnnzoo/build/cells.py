"""Cells in the BNAS template, as the official BNAS code (gistvision/bnas, ``src/model.py``) builds them.

A cell reads c_{k-2} and c_{k-1} and brings both to ``C`` channels with binary 1x1 convs; when
c_{k-2} is at twice the resolution (the previous cell was a reduction) with a binary 3x3
stride-2 conv instead. Each node is the sum of its edges' ops; the output concatenates the
``concat`` nodes. Every cell but the first adds a cell-level residual from c_{k-1}: the identity
in normal cells; in reduction cells BatchNorm and a real 2x2 stride-2 conv with a bias to the
cell's output channels (Table 3 counts it).
"""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.build.cell_ops import ReductionResidual, make_op, preprocessing
from bnnzoo.dsl.spaces import CELL_INPUTS, CELL_KINDS
from bnnzoo.dsl.types import Cell, CellNetwork
from bnnzoo.errors import ModelError


class BinaryCell(nn.Module):
    """One cell built from a :class:`~bnnzoo.dsl.types.Cell` genotype."""

    def __init__(
        self,
        genotype: Cell,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction_prev: bool,
        residual: bool,
    ) -> None:
        super().__init__()
        reduction = genotype.kind == "reduction"
        self.preprocess0 = preprocessing(prev_prev_channels, channels, reduction_prev)
        self.preprocess1 = preprocessing(prev_channels, channels, False)
        self.ops = nn.ModuleList()
        self.edge_inputs: list[list[int]] = []
        for node in genotype.nodes:
            self.edge_inputs.append([edge.input for edge in node.edges])
            for edge in node.edges:
                stride = 2 if reduction and edge.input < CELL_INPUTS else 1
                self.ops.append(make_op(edge.op, channels, stride))
        self.concat = list(genotype.concat)
        self.out_channels = len(self.concat) * channels
        self.residual: nn.Module | None = None
        if residual and reduction:
            self.residual = ReductionResidual(prev_channels, self.out_channels)
        elif residual:
            if prev_channels != self.out_channels:
                raise ModelError(
                    f"a normal cell's residual needs {self.out_channels} input channels, got {prev_channels}"
                )
            self.residual = nn.Identity()

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        op_index = 0
        for inputs in self.edge_inputs:
            total = 0
            for source in inputs:
                total = total + self.ops[op_index](states[source])
                op_index += 1
            states.append(total)
        out = torch.cat([states[i] for i in self.concat], dim=1)
        return out if self.residual is None else out + self.residual(s1)


class CellBody(nn.Module):
    """The cells of a BNAS-style network; the reductions double the channels."""

    def __init__(self, body: CellNetwork, stem_channels: int) -> None:
        super().__init__()
        cells = {kind: getattr(body, kind) for kind in CELL_KINDS}
        prev_prev, prev, channels = stem_channels, stem_channels, body.channels
        reduction_prev = False
        self.cells = nn.ModuleList()
        self.taps: list[int] = []  # cells after which a feature map is taken
        self.tap_reductions: list[int] = []
        reduction_factor = 1
        for index in range(body.layers):
            is_reduction = index in body.reductions
            if is_reduction:
                if index > 0:
                    self.taps.append(index - 1)
                    self.tap_reductions.append(reduction_factor)
                channels *= 2
                reduction_factor *= 2
            cell = BinaryCell(
                cells["reduction" if is_reduction else "normal"],
                prev_prev,
                prev,
                channels,
                reduction_prev,
                residual=index > 0,
            )
            self.cells.append(cell)
            prev_prev, prev = prev, cell.out_channels
            reduction_prev = is_reduction
        self.taps.append(body.layers - 1)
        self.tap_reductions.append(reduction_factor)
        self.tap_channels = [self.cells[i].out_channels for i in self.taps]
        self.out_channels = prev

    def tap_module(self, tap: int) -> str:
        return f"body.cells.{self.taps[tap]}"

    def forward(self, x: torch.Tensor, take: set[int] | frozenset[int] = frozenset(), stop: int | None = None):
        """Run the cells; return the last output and the feature maps at the taps in ``take``."""
        s0 = s1 = x
        features = []
        last = len(self.cells) - 1 if stop is None else self.taps[stop]
        for index, cell in enumerate(self.cells[: last + 1]):
            s0, s1 = s1, cell(s0, s1)
            if index in self.taps and self.taps.index(index) in take:
                features.append(s1)
        return s1, features
