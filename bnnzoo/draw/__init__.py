"""Graphviz diagrams of genotypes: cells, networks and side-by-side comparisons.

Every function returns a :class:`graphviz.Digraph`, which renders inline in Jupyter and can be
restyled (``graph.attr(...)``, ``graph.node_attr.update(...)``); :func:`render` writes it to a file.
Genotypes may be given as a :class:`~bnnzoo.dsl.types.Genotype`, a zoo name (``"bnas_a_baseline"``,
tags such as ``".untrained"`` allowed), a ``.bnn`` path, or a built model (anything with a
``genotype`` attribute).

>>> graph = draw_genotype("xnor_resnet18")
>>> render(graph, "xnor_resnet18.svg")  # doctest: +SKIP

The style table and the dead-node rule are in :mod:`bnnzoo.draw.style` and :mod:`bnnzoo.draw.cells`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from bnnzoo.draw import style
from bnnzoo.draw.cells import add_cell, draw_cell, node_id, node_states, output_id
from bnnzoo.draw.network import add_legend, add_network, draw_network_genotype
from bnnzoo.draw.rendering import (
    FORMATS,
    DrawError,
    GraphvizMissingError,
    dot_available,
    output_format,
    render,
)
from bnnzoo.dsl.library import resolve_genotype
from bnnzoo.dsl.spaces import CELL_KINDS
from bnnzoo.dsl.types import CellNetwork, Genotype, LayerList

if TYPE_CHECKING:
    import graphviz

__all__ = [
    "CELL_CHOICES",
    "FORMATS",
    "DrawError",
    "GraphvizMissingError",
    "dot_available",
    "draw_cell",
    "draw_genotype",
    "draw_grid",
    "draw_network",
    "node_states",
    "output_format",
    "render",
    "resolve",
]

CELL_CHOICES = (*CELL_KINDS, "all")


def resolve(source: Any) -> Genotype:
    """The genotype of a Genotype, a model with a ``genotype``, a zoo name (tag allowed) or a path."""
    genotype = getattr(source, "genotype", None)
    if isinstance(genotype, Genotype):
        return genotype
    return resolve_genotype(source)  # a zoo name (tag allowed) or a path: dsl.library decides


def _check_cell(cell: str) -> None:
    if cell not in CELL_CHOICES:
        raise DrawError(f"unknown cell '{cell}'; expected one of: {', '.join(CELL_CHOICES)}")


def draw_genotype(genotype: Any, cell: str = "all") -> graphviz.Digraph:
    """Draw any genotype: a layer list as a network, a cell genotype as its cells.

    For cell genotypes, ``cell="all"`` gives both cells side by side (one cluster each),
    ``"normal"`` or ``"reduction"`` just that cell. Layer lists ignore ``cell``.
    """
    _check_cell(cell)
    genotype = resolve(genotype)
    if isinstance(genotype.body, LayerList):
        return draw_network_genotype(genotype)
    assert isinstance(genotype.body, CellNetwork)
    if cell != "all":
        graph = style.new_graph(f"{genotype.name}_{cell}", f"{genotype.name}: {cell} cell")
        add_cell(graph, getattr(genotype.body, cell))
        return graph
    graph = style.new_graph(genotype.name, genotype.name)
    for kind in CELL_KINDS:
        with graph.subgraph(name=f"cluster_{kind}") as cluster:
            cluster.attr(**style.cluster_attrs(f"{kind} cell"))
            add_cell(cluster, getattr(genotype.body, kind), prefix=f"{kind}_")
    return graph


def draw_network(genotype: Any) -> graphviz.Digraph:
    """Draw a layer-list genotype (``mbconv`` or ``resnet`` space) as a chain of blocks."""
    genotype = resolve(genotype)
    if not isinstance(genotype.body, LayerList):
        raise DrawError(
            f"'{genotype.name}' is a cell genotype ({genotype.space} space), not a layer list; "
            "draw it with draw_genotype() or draw_cell()"
        )
    return draw_network_genotype(genotype)


def draw_grid(genotypes: Iterable[Any], cell: str = "all") -> graphviz.Digraph:
    """Several genotypes side by side, one titled cluster each, for comparison.

    Cell genotypes show the cells ``cell`` picks (normal above reduction for ``"all"``); layer
    lists show their network, and one legend for all of them closes the page.
    """
    _check_cell(cell)
    genotypes = [resolve(genotype) for genotype in genotypes]
    if not genotypes:
        raise DrawError("draw_grid needs at least one genotype")
    graph = style.new_graph("grid", None)
    networks: list[Genotype] = []
    for number, genotype in enumerate(genotypes):
        prefix = f"g{number}_"
        with graph.subgraph(name=f"cluster_g{number}") as column:
            column.attr(**{**style.cluster_attrs(genotype.name), "style": "rounded", "color": "#888888"})
            if isinstance(genotype.body, LayerList):
                add_network(column, genotype, prefix)
                networks.append(genotype)
                continue
            previous_output = None
            for kind in CELL_KINDS if cell == "all" else (cell,):
                cell_prefix = f"{prefix}{kind}_"
                with column.subgraph(name=f"cluster_{cell_prefix}cell") as cluster:
                    cluster.attr(**style.cluster_attrs(f"{kind} cell"))
                    add_cell(cluster, getattr(genotype.body, kind), prefix=cell_prefix)
                if previous_output is not None:
                    # Keeps the reduction cell below the normal one, in the genotype's column.
                    column.edge(previous_output, node_id(cell_prefix, 0), **style.edge_attrs("layout"))
                previous_output = output_id(cell_prefix)
    if networks:
        # Unanchored, the legend sits beside the top rows: edges to it would pull boxes out of order.
        add_legend(graph, networks, anchors=())
    return graph
