"""Genotypes drawn uniformly from a supernet's space: the random-search baseline.

A draw sets the supernet's architecture parameters to a random one-hot choice and derives the
genotype with the search's own :func:`~bnnzoo.search.derive.derive`, so random and searched
genotypes share one skeleton and one derivation. MBConv layers draw uniformly among their
allowed candidates; cell nodes draw two distinct inputs and an op for each, and a cell that
would break the derivation's liveness rule is drawn again (the search can never emit one).
"""

from __future__ import annotations

import torch

from bnnzoo.dsl.spaces import BNAS_OPS, CELL_INPUTS
from bnnzoo.dsl.types import Cell, Edge, Genotype, Node
from bnnzoo.search.cell_supernet import CellSupernet, edge_index
from bnnzoo.search.derive import derive, is_dead_free
from bnnzoo.search.mbconv_supernet import MBConvSupernet

_CHOSEN, _OTHER = 10.0, -10.0
MAX_DRAWS = 1000


def random_genotype(supernet: MBConvSupernet | CellSupernet, generator: torch.Generator, name: str) -> Genotype:
    """One uniform draw from ``supernet``'s space; its alphas are restored afterwards."""
    saved = [module.alpha.detach().clone() for module in supernet.arch_modules()]
    try:
        with torch.no_grad():
            if isinstance(supernet, CellSupernet):
                for module in supernet.arch_modules():
                    module.alpha.copy_(_cell_logits(supernet.nodes, generator))
            else:
                module = supernet.alpha
                scores = torch.rand(module.alpha.shape, generator=generator).masked_fill(~module.allowed, -1.0)
                module.alpha.fill_(_OTHER)
                module.alpha.scatter_(1, scores.argmax(1, keepdim=True), _CHOSEN)
        return derive(supernet, name)
    finally:
        with torch.no_grad():
            for module, alpha in zip(supernet.arch_modules(), saved):
                module.alpha.copy_(alpha)


def _cell_logits(nodes: int, generator: torch.Generator) -> torch.Tensor:
    for _ in range(MAX_DRAWS):
        logits = torch.full((edge_index(nodes, 0), len(BNAS_OPS)), _OTHER)
        cell_nodes = []
        for node in range(nodes):
            sources = sorted(torch.randperm(CELL_INPUTS + node, generator=generator)[:2].tolist())
            ops = torch.randint(len(BNAS_OPS), (2,), generator=generator).tolist()
            for source, op in zip(sources, ops):
                logits[edge_index(node, source), op] = _CHOSEN
            edges = tuple(Edge(BNAS_OPS[op], source) for source, op in zip(sources, ops))
            cell_nodes.append(Node(CELL_INPUTS + node, edges))
        concat = tuple(range(CELL_INPUTS, CELL_INPUTS + nodes))
        if is_dead_free(Cell("normal", tuple(cell_nodes), concat)):
            return logits
    raise RuntimeError(f"no live cell in {MAX_DRAWS} draws")  # unreachable: most draws are live
