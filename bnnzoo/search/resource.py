"""A differentiable expected-ops penalty from the profiler's per-candidate counts.

The expected Equiv. Ops of a supernet is the sum over choice points of (mixing weight x measured
Equiv. Ops of that candidate), plus the measured fixed part (stem, classifier; for cells also the
preprocessing and reduction shortcuts). For cells only two of a node's ``2 + j`` incoming edges
survive derivation, so each edge's expectation is scaled by ``2 / (2 + j)``. The penalty is
``weight * (expected / target - 1) ** 2``.
"""

from __future__ import annotations

import torch

from bnnzoo.dsl.spaces import BNAS_OPS, CELL_INPUTS
from bnnzoo.profile.candidates import (
    Counts,
    cell_edge_counts,
    cell_fixed_counts,
    cell_positions,
    mbconv_block_counts,
    mbconv_fixed_counts,
)
from bnnzoo.search.cell_supernet import CellSupernet, edge_index
from bnnzoo.search.mbconv_supernet import MBConvSupernet


class ExpectedOps:
    """Expected Equiv. Ops of a supernet as a differentiable function of its mixing weights."""

    def __init__(self, supernet: MBConvSupernet | CellSupernet) -> None:
        self.supernet = supernet
        if isinstance(supernet, CellSupernet):
            self.fixed, self.costs = _cell_costs(supernet)
        else:
            self.fixed, self.costs = _layer_costs(supernet)

    def __call__(self) -> torch.Tensor:
        total = torch.tensor(self.fixed)
        for module, cost in zip(self.supernet.arch_modules(), self.costs):
            weights = module.clean_weights()
            total = total + (weights * cost.to(weights.device)).sum()
        return total

    def penalty(self, target: float, weight: float) -> torch.Tensor:
        return weight * (self() / target - 1) ** 2


def _equiv(counts: Counts) -> float:
    return counts.figures()["equiv_ops"]


def _layer_costs(net: MBConvSupernet) -> tuple[float, list[torch.Tensor]]:
    shape = (net.in_chans, net.input_size, net.input_size)
    fixed = mbconv_fixed_counts(shape, net.stem_channels, net.widths[-1], net.num_classes)
    cost = torch.zeros(len(net.layers), len(net.candidates))
    size, channels = net.input_size, net.stem_channels
    for index, layer in enumerate(net.layers):
        block = layer.blocks[0]
        stride = block.group_conv.conv.stride[0]
        width = block.project.conv.out_channels
        for slot, candidate in enumerate(layer.candidates):
            if candidate is not None:
                cost[index, slot] = _equiv(mbconv_block_counts(channels, width, *candidate, stride, size))
        size, channels = -(-size // stride), width
    return _equiv(fixed), [cost]


def _cell_costs(net: CellSupernet) -> tuple[float, list[torch.Tensor]]:
    shape = (net.in_chans, net.input_size, net.input_size)
    fixed = cell_fixed_counts(shape, net.num_classes, net.layers, net.channels, net.stem_multiplier, net.nodes)
    edges = edge_index(net.nodes, 0)
    costs = {kind: torch.zeros(edges, len(BNAS_OPS)) for kind in ("normal", "reduction")}
    for kind, positions in cell_positions(net.layers, net.channels, net.input_size).items():
        for channels, size in positions:
            for node in range(net.nodes):
                share = 2 / (CELL_INPUTS + node)
                for source in range(CELL_INPUTS + node):
                    for slot, op in enumerate(BNAS_OPS):
                        if op != "none":
                            counts = cell_edge_counts(kind, op, source, channels, size)
                            costs[kind][edge_index(node, source), slot] += share * _equiv(counts)
    return _equiv(fixed), [costs["normal"], costs["reduction"]]
