"""The cost model: measured counts of single candidates and of the fixed parts, cached.

The reconstruction fitter (:mod:`bnnzoo.fit`) and the search's resource penalty
(:mod:`bnnzoo.search.resource`) both sum these instead of re-deriving formulas: each number is the
profiler's count of a module the builder makes, built on the meta device. Per position: an MBConv
block at its input channels and size, a cell op on its edge (:func:`cell_edge_counts` applies the
reduction rule); fixed: the real stem and the classifier, or for cells the whole network with every
edge ``none`` (stem, preprocessing, reduction shortcuts, classifier).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bnnzoo.build.cell_ops import make_op
from bnnzoo.build.mbconv import BinaryMBConv
from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl.construct import cell_genotype, default_reductions
from bnnzoo.dsl.spaces import CELL_INPUTS, reduced_size
from bnnzoo.dsl.types import Cell, Edge, Node
from bnnzoo.profile.counter import EQUIV_DIVISOR, memory_mb, profile_module


@dataclass(frozen=True)
class Counts:
    """Additive op and parameter counts."""

    bops: float = 0.0
    flops: float = 0.0
    binary_params: float = 0.0
    real_params: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.bops + other.bops,
            self.flops + other.flops,
            self.binary_params + other.binary_params,
            self.real_params + other.real_params,
        )

    def __sub__(self, other: Counts) -> Counts:
        return self + Counts(-other.bops, -other.flops, -other.binary_params, -other.real_params)

    def figures(self) -> dict[str, float]:
        return {
            "bops": self.bops,
            "flops": self.flops,
            "equiv_ops": self.flops + self.bops / EQUIV_DIVISOR,
            "params_mb": memory_mb(int(self.binary_params), int(self.real_params)),
        }


def measure(build: Callable[[], nn.Module], input_size: tuple[int, ...]) -> Counts:
    """The profiler's counts of the module that ``build()`` makes, built on the meta device."""
    with torch.device("meta"):
        module = build()
    result = profile_module(module, input_size)
    return Counts(result.bops, result.flops, result.binary_params, result.real_params)


@functools.cache
def mbconv_block_counts(cin: int, cout: int, kernel: int, expansion: int, stride: int, size: int) -> Counts:
    return measure(lambda: BinaryMBConv(cin, cout, kernel, expansion, stride), (cin, size, size))


@functools.cache
def cell_op_counts(op: str, channels: int, stride: int, size: int) -> Counts:
    return measure(lambda: make_op(op, channels, stride), (channels, size, size))


def mbconv_fixed_counts(input_shape: tuple[int, int, int], stem: int, last: int, num_classes: int) -> Counts:
    """The fixed part of an MBConv network: the real 3x3 stem (no bias, as the builder's) and the classifier."""
    channels = input_shape[0]
    stem_counts = measure(lambda: nn.Conv2d(channels, stem, 3, padding=1, bias=False), input_shape)
    return stem_counts + measure(lambda: nn.Linear(last, num_classes), (last,))


CellEdges = tuple[tuple[str, int], ...]  # (op, input) pairs, two per node


def cell_from_edges(kind: str, edges: CellEdges) -> Cell:
    """A cell of ``kind`` whose node ``j`` takes edges ``2j`` and ``2j + 1``; every node is an output."""
    nodes = tuple(
        Node(CELL_INPUTS + node, tuple(Edge(op, source) for op, source in edges[2 * node : 2 * node + 2]))
        for node in range(len(edges) // 2)
    )
    return Cell(kind, nodes, tuple(node.index for node in nodes))


@functools.cache
def cell_fixed_counts(
    input_shape: tuple[int, int, int], num_classes: int, layers: int, channels: int, stem_multiplier: int, nodes: int
) -> Counts:
    """Stem, preprocessing, reduction shortcuts and classifier: a BNAS network whose edges are all none."""
    empty = tuple(("none", CELL_INPUTS + node - 1 if edge else 0) for node in range(nodes) for edge in (0, 1))
    cells = cell_from_edges("normal", empty), cell_from_edges("reduction", empty)
    genotype = cell_genotype("fit", input_shape, num_classes, layers, channels, *cells, stem_multiplier)
    return measure(lambda: BinaryNet(genotype), genotype.input_shape)


def cell_positions(layers: int, channels: int, size: int) -> dict[str, list[tuple[int, int]]]:
    """For each cell kind, the (channels, input size) of every cell of that kind (default reductions)."""
    reductions = default_reductions(layers)
    positions: dict[str, list[tuple[int, int]]] = {"normal": [], "reduction": []}
    for index in range(layers):
        if index in reductions:
            positions["reduction"].append((channels * 2, size))
            channels, size = channels * 2, reduced_size(size)
        else:
            positions["normal"].append((channels, size))
    return positions


def cell_edge_counts(kind: str, op: str, source: int, channels: int, size: int) -> Counts:
    """An edge's op in a cell of ``kind`` at (channels, input size): stride 2 on a reduction cell's inputs."""
    reduce = kind == "reduction" and source < CELL_INPUTS
    op_size = size if kind == "normal" or reduce else reduced_size(size)
    return cell_op_counts(op, channels, 2 if reduce else 1, op_size)
