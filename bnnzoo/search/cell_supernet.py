"""The BNAS-space supernet, vectorised.

Every cell edge mixes the BNAS ops with ``softmax(alpha)``. The four binary convolutions of an
edge all read the same binarized input, and a convolution is linear in its kernel, so their
weighted sum is ONE convolution with the weighted sum of their (binarized, zero-embedded)
kernels: 3x3 into the centre of a 5x5 kernel, and the dilated 3x3 into the centre of the dilated
5x5. All edges leaving one state are further stacked along the output channels, so a cell runs
two convolutions per state instead of four per edge, and the pools run once per state.

This is exact for the mixture of binary convolutions without a per-op BatchNorm. DARTS puts a
parameter-free BatchNorm after each op to balance their scales; by default (``op_norm="scale"``)
each op's binarized kernel is instead scaled by ``1 / sqrt(fan_in)``, a fixed normalisation that
keeps the sum linear, so the four convolutions stay one. ``op_norm="batchnorm"`` is DARTS's way:
the four kernels run as separate output channels of the same two convolutions, and every op's
output, pools included, goes through a BatchNorm without affine parameters (batch statistics,
no running buffers) before it is mixed. Its convolutions have twice the output channels (see
docs/search.md for what each gives). Preprocessing, the cell-level residual and the macro
structure are those of the final networks (`bnnzoo/build/cells.py`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from bnnzoo.build.binary import SignSTE, binarize_activation
from bnnzoo.build.cell_ops import ReductionResidual, preprocessing
from bnnzoo.build.units import RealStem
from bnnzoo.dsl.construct import default_reductions
from bnnzoo.dsl.spaces import BNAS_OPS, CELL_INPUTS
from bnnzoo.search.config import OP_NORMS

OP_INDEX = {name: index for index, name in enumerate(BNAS_OPS)}
_MAX, _AVG = OP_INDEX["max_pool_3x3"], OP_INDEX["avg_pool_3x3"]
_CONV3, _CONV5 = OP_INDEX["bin_conv_3x3"], OP_INDEX["bin_conv_5x5"]
_DIL3, _DIL5 = OP_INDEX["bin_dil_conv_3x3"], OP_INDEX["bin_dil_conv_5x5"]


def edge_index(node: int, source: int) -> int:
    """DARTS edge numbering: node j's edges come after those of nodes < j; node j has 2 + j inputs."""
    return sum(CELL_INPUTS + k for k in range(node)) + source


def num_edges(nodes: int) -> int:
    return edge_index(nodes, 0)


class MixedCell(nn.Module):
    """One supernet cell: every edge mixes all BNAS ops."""

    def __init__(
        self,
        prev_prev_channels: int,
        prev_channels: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        residual: bool,
        nodes: int = 4,
        op_norm: str = "scale",
        centre_inputs: bool = True,
    ) -> None:
        super().__init__()
        if op_norm not in OP_NORMS:
            raise ValueError(f"op_norm must be one of {OP_NORMS}, got {op_norm!r}")
        self.op_norm, self.centre_inputs = op_norm, centre_inputs
        self.reduction = reduction
        self.channels = channels
        self.nodes = nodes
        self.preprocess0 = preprocessing(prev_prev_channels, channels, reduction_prev)
        self.preprocess1 = preprocessing(prev_channels, channels, False)
        # State i feeds every node whose state index (2 + node) is larger than i.
        self.targets = [list(range(max(0, source - 1), nodes)) for source in range(nodes + 1)]
        for source, targets in enumerate(self.targets):
            indices = torch.tensor([edge_index(node, source) for node in targets])
            self.register_buffer(f"edges{source}", indices, persistent=False)
        self.w3 = nn.ParameterList(self._kernels(3))
        self.w5 = nn.ParameterList(self._kernels(5))
        self.wd3 = nn.ParameterList(self._kernels(3))
        self.wd5 = nn.ParameterList(self._kernels(5))
        self.thresholds = nn.ParameterList(
            nn.Parameter(torch.zeros(1, channels, 1, 1)) for _ in range(len(self.targets))
        )
        self.scale3 = 1 / math.sqrt(9 * channels)
        self.scale5 = 1 / math.sqrt(25 * channels)
        self.out_channels = nodes * channels
        self.residual: nn.Module | None = None
        if residual and reduction:
            self.residual = ReductionResidual(prev_channels, self.out_channels)
        elif residual:
            self.residual = nn.Identity()

    def _kernels(self, size: int) -> list[nn.Parameter]:
        c = self.channels
        return [nn.Parameter(torch.empty(len(t) * c, c, size, size).uniform_(-0.1, 0.1)) for t in self.targets]

    def binary_weights(self) -> list[nn.Parameter]:
        """The latent weights that are binarized in the forward pass (for eps_W)."""
        return [*self.w3, *self.w5, *self.wd3, *self.wd5]

    def _mixed_kernels(self, source: int, weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The edges' mixtures of the binary convs: a plain 5x5 and a dilation-2 5x5 kernel."""
        c = self.channels
        columns = weights[:, (_CONV3, _CONV5, _DIL3, _DIL5)].repeat_interleave(c, dim=0)
        columns = columns * torch.tensor([self.scale3, self.scale5, self.scale3, self.scale5], device=weights.device)
        columns = columns.view(-1, 4, 1, 1, 1)
        plain = columns[:, 1] * SignSTE.apply(self.w5[source])
        plain[:, :, 1:4, 1:4] += columns[:, 0] * SignSTE.apply(self.w3[source])
        dilated = columns[:, 3] * SignSTE.apply(self.wd5[source])
        dilated[:, :, 1:4, 1:4] += columns[:, 2] * SignSTE.apply(self.wd3[source])
        return plain, dilated

    def _binarized(self, source: int, x: torch.Tensor) -> torch.Tensor:
        """The sign of state ``source`` for its edges' binary convs. With ``centre_inputs`` it is taken
        after a BatchNorm without affine parameters, as the built cells' BN-sign-conv units do: the
        states come out of ReLUs, so a bare sign with a zero-initialised threshold would see +1
        everywhere and every binary conv would start as a constant."""
        if self.centre_inputs:
            x = F.batch_norm(x, None, None, training=True)
        return binarize_activation(x - self.thresholds[source])

    def _normalized_ops(self, source: int, x: torch.Tensor, stride: int) -> list[torch.Tensor]:
        """``op_norm="batchnorm"``: each op of each edge leaving ``source``, batch-normalised without
        affine parameters; six tensors of ``len(targets) * channels`` channels, in BNAS_OPS order
        (max, avg, conv3, conv5, dil3, dil5)."""
        xb = F.pad(self._binarized(source, x), (4, 4, 4, 4), value=1.0)
        plain = torch.cat([F.pad(SignSTE.apply(self.w3[source]), (1, 1, 1, 1)), SignSTE.apply(self.w5[source])])
        dilated = torch.cat([F.pad(SignSTE.apply(self.wd3[source]), (1, 1, 1, 1)), SignSTE.apply(self.wd5[source])])
        conv3, conv5 = F.conv2d(xb[:, :, 2:-2, 2:-2], plain, stride=stride).chunk(2, dim=1)
        dil3, dil5 = F.conv2d(xb, dilated, stride=stride, dilation=2).chunk(2, dim=1)
        edges = len(self.targets[source])
        max_pooled = F.max_pool2d(x, 3, stride, 1).repeat(1, edges, 1, 1)
        avg_pooled = F.avg_pool2d(x, 3, stride, 1, count_include_pad=False).repeat(1, edges, 1, 1)
        ops = (max_pooled, avg_pooled, conv3, conv5, dil3, dil5)
        return [F.batch_norm(op, None, None, training=True) for op in ops]

    def _edge_terms(self, source: int, x: torch.Tensor, stride: int, edge_weights: torch.Tensor):
        """For each edge leaving ``source`` (in ``targets`` order), the weighted op outputs whose sum
        is the edge's mixture, in the order they are added."""
        c = self.channels
        if self.op_norm == "batchnorm":
            ops = list(zip((_MAX, _AVG, _CONV3, _CONV5, _DIL3, _DIL5), self._normalized_ops(source, x, stride)))
            return [
                [w[index] * op[:, slot * c : (slot + 1) * c] for index, op in ops]
                for slot, w in enumerate(edge_weights)
            ]
        plain, dilated = self._mixed_kernels(source, edge_weights)
        xb = F.pad(self._binarized(source, x), (4, 4, 4, 4), value=1.0)
        convs = F.conv2d(xb[:, :, 2:-2, 2:-2], plain, stride=stride) + F.conv2d(xb, dilated, stride=stride, dilation=2)
        max_pooled = F.max_pool2d(x, 3, stride, 1)
        avg_pooled = F.avg_pool2d(x, 3, stride, 1, count_include_pad=False)
        return [
            [convs[:, slot * c : (slot + 1) * c], w[_MAX] * max_pooled, w[_AVG] * avg_pooled]
            for slot, w in enumerate(edge_weights)
        ]

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        partial: list[torch.Tensor | float] = [0.0] * self.nodes
        for source, targets in enumerate(self.targets):
            if source >= CELL_INPUTS:
                states.append(partial[source - CELL_INPUTS])  # this node has all its inputs now
            stride = 2 if self.reduction and source < CELL_INPUTS else 1
            edge_weights = weights[getattr(self, f"edges{source}")]
            for node, terms in zip(targets, self._edge_terms(source, states[source], stride, edge_weights)):
                for term in terms:
                    partial[node] = partial[node] + term
        states.append(partial[-1])
        out = torch.cat(states[CELL_INPUTS:], dim=1)
        return out if self.residual is None else out + self.residual(s1)


class CellSupernet(nn.Module):
    """A BNAS-template supernet: ``layers`` mixed cells, reductions at layers//3 and 2*layers//3."""

    space = "bnas"

    def __init__(
        self,
        channels: int = 16,
        layers: int = 8,
        num_classes: int = 10,
        in_chans: int = 3,
        nodes: int = 4,
        stem_multiplier: int = 3,
        input_size: int = 32,
        op_norm: str = "scale",
        centre_inputs: bool = True,
    ) -> None:
        super().__init__()
        from bnnzoo.search.mixing import ArchParameters

        self.channels, self.layers, self.nodes = channels, layers, nodes
        self.num_classes, self.in_chans, self.input_size = num_classes, in_chans, input_size
        self.stem_multiplier = stem_multiplier
        self.reductions = default_reductions(layers)
        stem_channels = stem_multiplier * channels
        self.stem = RealStem(in_chans, stem_channels, 3, 1)
        prev_prev, prev, width = stem_channels, stem_channels, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        for index in range(layers):
            reduction = index in self.reductions
            width = width * 2 if reduction else width
            cell = MixedCell(
                prev_prev, prev, width, reduction, reduction_prev, index > 0, nodes, op_norm, centre_inputs
            )
            self.cells.append(cell)
            prev_prev, prev, reduction_prev = prev, cell.out_channels, reduction
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(prev, num_classes)
        edges = [
            f"node {node + CELL_INPUTS} <- {source}" for node in range(nodes) for source in range(CELL_INPUTS + node)
        ]
        self.alpha_normal = ArchParameters(num_edges(nodes), len(BNAS_OPS), None, "normal", edges, list(BNAS_OPS))
        self.alpha_reduction = ArchParameters(num_edges(nodes), len(BNAS_OPS), None, "reduction", edges, list(BNAS_OPS))

    def arch_modules(self) -> list[nn.Module]:
        return [self.alpha_normal, self.alpha_reduction]

    def binary_weights(self) -> list[nn.Parameter]:
        weights = [w for cell in self.cells for w in cell.binary_weights()]
        return weights + [m.weight for m in self.modules() if getattr(m, "is_binary", False)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        normal, reduction = self.alpha_normal.weights(), self.alpha_reduction.weights()
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduction if cell.reduction else normal)
        return self.fc(torch.flatten(self.pool(s1), 1))
