"""Cell diagrams: inputs c_{k-2} and c_{k-1}, the intermediate nodes, the output concatenation.

Edges are labelled with their op; binary ops are solid, real-valued ops (pooling) dotted, ``none``
edges are left out. Dead nodes are drawn gray and dashed, by this rule:

- a node is **zero** when every one of its edges is ``none``: it computes an all-zero map;
- a node is **live** when it is not zero and it is in the ``concat`` list or feeds, through a
  non-``none`` edge, a live node;
- every other intermediate node is **unused**: nothing it computes reaches the output.

Zero and unused nodes are dead; so are the edges into and out of them (gray, keeping their line
style). Zeros are not pushed through ops: a binary convolution with BatchNorm of a zero map is not
zero in general. The inputs c_{k-2} and c_{k-1} are never marked dead, since the network around the
cell may use them (its cell-level residual reads c_{k-1}).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bnnzoo.draw import style
from bnnzoo.dsl.spaces import CELL_INPUTS
from bnnzoo.dsl.types import Cell

if TYPE_CHECKING:
    import graphviz

LIVE, ZERO, UNUSED = "live", "zero", "unused"
INPUT_LABELS = ("c_{k-2}", "c_{k-1}")
OUTPUT_LABEL = "c_{k}"


def node_states(cell: Cell) -> dict[int, str]:
    """``"live"``, ``"zero"`` or ``"unused"`` for each intermediate node, by index (module docstring)."""
    zero = {node.index for node in cell.nodes if all(style.op_kind(e.op) is None for e in node.edges)}
    live = {index for index in cell.concat if index >= CELL_INPUTS and index not in zero}
    by_index = {node.index: node for node in cell.nodes}
    stack = sorted(live)
    while stack:
        node = by_index.get(stack.pop())
        for edge in node.edges if node else ():
            source = edge.input
            if style.op_kind(edge.op) is None or source < CELL_INPUTS or source in zero or source in live:
                continue
            live.add(source)
            stack.append(source)
    return {node.index: ZERO if node.index in zero else LIVE if node.index in live else UNUSED for node in cell.nodes}


def node_id(prefix: str, index: int) -> str:
    """The DOT id of cell node ``index``: ``in0``, ``in1``, ``n2``, ... (after ``prefix``)."""
    return f"{prefix}in{index}" if index < CELL_INPUTS else f"{prefix}n{index}"


def output_id(prefix: str) -> str:
    return f"{prefix}out"


def add_cell(graph: graphviz.Digraph, cell: Cell, prefix: str = "") -> None:
    """Add the nodes and edges of ``cell`` to ``graph`` (a graph or cluster), ids after ``prefix``."""
    states = node_states(cell)
    with graph.subgraph(name=f"{prefix}inputs") as inputs:
        inputs.attr(rank="same")
        for index, label in enumerate(INPUT_LABELS):
            inputs.node(node_id(prefix, index), label, **style.node_attrs("cell_input"))
        # Keeps c_{k-2} left of c_{k-1}.
        inputs.edge(node_id(prefix, 0), node_id(prefix, 1), **style.edge_attrs("layout"))
    for node in cell.nodes:
        state = states[node.index]
        if state == LIVE:
            graph.node(node_id(prefix, node.index), str(node.index), **style.node_attrs("cell_node"))
        else:
            label = f"{node.index}\\n{state}"
            graph.node(node_id(prefix, node.index), label, **style.node_attrs("dead", state))
    graph.node(output_id(prefix), OUTPUT_LABEL, **style.node_attrs("cell_output"))

    def dead(index: int) -> bool:
        return index >= CELL_INPUTS and states[index] != LIVE

    for node in cell.nodes:
        for edge in node.edges:
            kind = style.op_kind(edge.op)
            if kind is None:
                continue
            attrs = style.edge_attrs(kind, dead=dead(edge.input) or dead(node.index))
            graph.edge(node_id(prefix, edge.input), node_id(prefix, node.index), edge.op, **attrs)
    for index in cell.concat:
        graph.edge(node_id(prefix, index), output_id(prefix), **style.edge_attrs("concat", dead=dead(index)))


def cell_title(cell: Cell) -> str:
    return f"{cell.kind} cell"


def draw_cell(cell: Cell, title: str | None = None) -> graphviz.Digraph:
    """One cell as a :class:`graphviz.Digraph`, titled ``title`` (default: ``"normal cell"``, ...)."""
    graph = style.new_graph(f"{cell.kind}_cell", title or cell_title(cell))
    add_cell(graph, cell)
    return graph
