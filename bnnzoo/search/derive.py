"""Derive the final genotype from a supernet's architecture parameters.

- ``mbconv``: the argmax candidate of each layer.
- ``bnas``: as BNAS does, ``none`` (zeroise) competes like any op: each edge's strength is its
  largest mixing weight over all ops, each node keeps its two strongest edges, and each kept edge
  takes its argmax op, which may be ``none``.
"""

from __future__ import annotations

import torch

from bnnzoo.dsl.construct import cell_genotype, mbconv_genotype
from bnnzoo.dsl.spaces import BNAS_OPS, CELL_INPUTS
from bnnzoo.dsl.types import Cell, Edge, Genotype, MBConv, Node, Skip
from bnnzoo.search.cell_supernet import CellSupernet, edge_index
from bnnzoo.search.mbconv_supernet import MBConvSupernet


def derive(supernet: MBConvSupernet | CellSupernet, name: str = "searched", **header) -> Genotype:
    """The genotype that ``supernet``'s current architecture parameters select."""
    if isinstance(supernet, CellSupernet):
        return _derive_cells(supernet, name, **header)
    return _derive_layers(supernet, name, **header)


def _derive_layers(net: MBConvSupernet, name: str, **header) -> Genotype:
    weights = net.alpha.weights().detach()
    layers: list[MBConv | Skip] = []
    for index, layer in enumerate(net.layers):
        choice = layer.candidates[int(weights[index, : len(layer.candidates)].argmax())]
        block = layer.blocks[0]  # every layer has an MB block first (skip is the last candidate)
        if choice is None:
            layers.append(Skip())
        else:
            layers.append(
                MBConv(choice[0], choice[1], block.project.conv.out_channels, block.group_conv.conv.stride[0])
            )
    shape = (net.in_chans, net.input_size, net.input_size)
    return mbconv_genotype(name, shape, net.num_classes, net.stem_channels, layers, net.shortcut, **header)


def derive_cell(weights: torch.Tensor, kind: str, nodes: int) -> Cell:
    """Top-2 edges per node by strongest op weight (none included), each with its argmax op."""
    weights = weights.detach()
    derived = []
    for node in range(nodes):
        sources = range(CELL_INPUTS + node)
        strength = {source: float(weights[edge_index(node, source)].max()) for source in sources}
        kept = sorted(sorted(sources, key=lambda s: -strength[s])[:2])
        edges = tuple(Edge(BNAS_OPS[int(weights[edge_index(node, s)].argmax())], s) for s in kept)
        derived.append(Node(CELL_INPUTS + node, edges))
    return Cell(kind, tuple(derived), tuple(range(CELL_INPUTS, CELL_INPUTS + nodes)))


def _derive_cells(net: CellSupernet, name: str, **header) -> Genotype:
    normal = derive_cell(net.alpha_normal.weights(), "normal", net.nodes)
    reduction = derive_cell(net.alpha_reduction.weights(), "reduction", net.nodes)
    shape = (net.in_chans, net.input_size, net.input_size)
    return cell_genotype(
        name, shape, net.num_classes, net.layers, net.channels, normal, reduction, net.stem_multiplier, **header
    )
