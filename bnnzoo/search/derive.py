"""Derive the final genotype from a supernet's architecture parameters.

- ``mbconv``: the argmax candidate of each layer.
- ``bnas``: as BNAS does, ``none`` (zeroise) competes like any op, under one liveness rule
  (docs/search.md, "Deriving the genotype"):

  1. Nodes are derived in order. A state is *live* if it is a cell input, or a node with at
     least one kept edge whose op is not ``none``.
  2. An edge from a dead state may only be ``none``: no op reads from a node that is all ``none``.
  3. Each edge's strength is its largest allowed mixing weight; each node keeps its two strongest
     edges, and each kept edge takes its argmax allowed op.
  4. If no node ends up live, the cell's output would not depend on its inputs. The single
     strongest non-``none`` op on an edge from a cell input is then forced into its node, in place
     of that node's weaker kept edge, so at least one path through the cell is not ``none``.
"""

from __future__ import annotations

import torch

from bnnzoo.dsl.construct import cell_genotype, mbconv_genotype
from bnnzoo.dsl.spaces import BNAS_OPS, CELL_INPUTS
from bnnzoo.dsl.types import Cell, Edge, Genotype, MBConv, Node, Skip
from bnnzoo.search.cell_supernet import CellSupernet, edge_index
from bnnzoo.search.mbconv_supernet import MBConvSupernet

NONE = BNAS_OPS.index("none")


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
    """The cell that mixing ``weights`` (edges x ops) select under the liveness rule above."""
    weights = weights.detach().float().cpu()
    live = [True] * CELL_INPUTS
    kept_edges: list[list[tuple[int, int]]] = []  # per node: (source, op index)
    for node in range(nodes):
        choices = []
        for source in range(CELL_INPUTS + node):
            row = weights[edge_index(node, source)]
            op = int(row.argmax()) if live[source] else NONE
            choices.append((float(row[op]), source, op))
        kept = sorted(sorted(choices, key=lambda c: -c[0])[:2], key=lambda c: c[1])
        kept_edges.append([(source, op) for _, source, op in kept])
        live.append(any(op != NONE for _, op in kept_edges[-1]))
    if not any(live[CELL_INPUTS:]):
        _force_one_path(weights, kept_edges)
    derived = tuple(
        Node(CELL_INPUTS + node, tuple(Edge(BNAS_OPS[op], source) for source, op in edges))
        for node, edges in enumerate(kept_edges)
    )
    return Cell(kind, derived, tuple(range(CELL_INPUTS, CELL_INPUTS + nodes)))


def _force_one_path(weights: torch.Tensor, kept_edges: list[list[tuple[int, int]]]) -> None:
    """Put the strongest non-``none`` op on an edge from a cell input into its node (rule 4)."""
    best = None
    for node in range(len(kept_edges)):
        for source in range(CELL_INPUTS):
            row = weights[edge_index(node, source)].clone()
            row[NONE] = -1.0
            op = int(row.argmax())
            if best is None or float(row[op]) > best[0]:
                best = (float(row[op]), node, source, op)
    _, node, source, op = best
    others = [edge for edge in kept_edges[node] if edge[0] != source]
    # keep the node's stronger other edge (all its edges are none, so any edge is harmless)
    others.sort(key=lambda edge: -float(weights[edge_index(node, edge[0]), edge[1]]))
    kept_edges[node] = sorted([(source, op), others[0]])


def is_dead_free(cell: Cell) -> bool:
    """True if no op reads from an all-``none`` node and at least one node is live."""
    live = [True] * CELL_INPUTS
    for node in cell.nodes:
        if any(edge.op != "none" and not live[edge.input] for edge in node.edges):
            return False
        live.append(any(edge.op != "none" for edge in node.edges))
    return any(live[CELL_INPUTS:])


def _derive_cells(net: CellSupernet, name: str, **header) -> Genotype:
    normal = derive_cell(net.alpha_normal.weights(), "normal", net.nodes)
    reduction = derive_cell(net.alpha_reduction.weights(), "reduction", net.nodes)
    shape = (net.in_chans, net.input_size, net.input_size)
    return cell_genotype(
        name, shape, net.num_classes, net.layers, net.channels, normal, reduction, net.stem_multiplier, **header
    )
