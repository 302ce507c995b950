"""The one style table of every bnnzoo diagram.

Every node and edge carries a Graphviz ``class`` attribute naming what it is (``binary``, ``real``,
``identity``, ``dead``, ...). Graphviz copies it into SVG output as the CSS class, so SVGs can be
restyled with CSS, and tests read it to check which parts are binary or real-valued.

The look, shared by cell and network diagrams:

- binary ops: solid blue lines; binary blocks are filled blue boxes;
- real-valued ops (pooling, stem, classifier, real 1x1 downsamples): dotted orange lines and boxes;
- ``none`` edges: left out;
- dead nodes (zero or unused, see :mod:`bnnzoo.draw.cells`): gray, dashed;
- downsampling points of a network: gray markers with the new feature-map size.
"""

from __future__ import annotations

from bnnzoo.dsl.spaces import BNAS_POOL_OPS

FONT = "Helvetica"

BINARY_COLOR = "#2b5d9b"
BINARY_FILL = "#dbe7f5"
REAL_COLOR = "#c05f0c"
DEAD_COLOR = "#a8a8a8"
DEAD_FONT = "#8c8c8c"
FLOW_COLOR = "#555555"
BOUNDARY_COLOR = "#9a9a9a"
BOUNDARY_FILL = "#e3e3e3"

# Node styles, by class. A node's class is one of these keys, possibly with more words after it.
NODE = {
    "binary": {"shape": "box", "style": "filled,rounded", "fillcolor": BINARY_FILL, "color": BINARY_COLOR},
    "real": {"shape": "box", "style": "dotted,rounded", "color": REAL_COLOR, "penwidth": "1.6"},
    "identity": {"shape": "box", "style": "dashed,rounded", "color": FLOW_COLOR, "fontcolor": FLOW_COLOR},
    "boundary": {
        "shape": "box",
        "style": "filled",
        "fillcolor": BOUNDARY_FILL,
        "color": BOUNDARY_COLOR,
        "fontcolor": "#555555",
        "fontsize": "10",
        "width": "0.3",
        "height": "0.9",
    },
    "input": {"shape": "plaintext", "fontcolor": "#333333"},
    "cell_input": {"shape": "box", "style": "filled", "fillcolor": "#d9ead3", "color": "#6a9a5b"},
    "cell_node": {"shape": "box", "style": "filled", "fillcolor": BINARY_FILL, "color": BINARY_COLOR},
    "cell_output": {"shape": "box", "style": "filled", "fillcolor": "#fff2cc", "color": "#b99a3a"},
    "dead": {"shape": "box", "style": "dashed", "color": DEAD_COLOR, "fontcolor": DEAD_FONT},
}

# Edge styles, by class.
EDGE = {
    "binary": {"style": "solid", "color": BINARY_COLOR, "fontcolor": BINARY_COLOR, "penwidth": "1.4"},
    "real": {"style": "dotted", "color": REAL_COLOR, "fontcolor": REAL_COLOR, "penwidth": "1.8"},
    "identity": {"style": "dashed", "color": FLOW_COLOR, "fontcolor": FLOW_COLOR},
    "concat": {"style": "solid", "color": FLOW_COLOR, "arrowsize": "0.7"},
    "flow": {"style": "solid", "color": FLOW_COLOR, "arrowsize": "0.7"},
    "downsample": {"arrowhead": "none", "constraint": "true"},
    "layout": {"style": "invis"},
}

# Dead edges keep their line style (solid binary, dotted real) but turn gray.
DEAD_EDGE = {"color": DEAD_COLOR, "fontcolor": DEAD_FONT}

GRAPH = {"fontname": FONT, "labelloc": "t", "fontsize": "16", "nodesep": "0.3", "ranksep": "0.45"}
NODE_DEFAULTS = {"fontname": FONT, "fontsize": "12", "margin": "0.12,0.06"}
EDGE_DEFAULTS = {"fontname": FONT, "fontsize": "10"}
CLUSTER = {"style": "rounded,dashed", "color": "#bbbbbb", "fontsize": "14", "labeljust": "c"}


def op_kind(op: str) -> str | None:
    """``binary``, ``real`` or ``identity`` for a cell op; ``None`` for ``none`` (left out)."""
    if op == "none":
        return None
    if op in BNAS_POOL_OPS or "pool" in op:
        return "real"
    if op in ("skip_connect", "identity"):
        return "identity"
    return "binary"


def node_attrs(kind: str, *extra_classes: str) -> dict[str, str]:
    """The attributes of a node of class ``kind`` (a key of :data:`NODE`), with its ``class``."""
    classes = dict.fromkeys((kind, *extra_classes))
    return {**NODE[kind], "class": " ".join(classes)}


def edge_attrs(kind: str, *extra_classes: str, dead: bool = False) -> dict[str, str]:
    """The attributes of an edge of class ``kind`` (a key of :data:`EDGE`), gray when ``dead``."""
    classes = (kind, *extra_classes, *(("dead",) if dead else ()))
    return {**EDGE[kind], **(DEAD_EDGE if dead else {}), "class": " ".join(classes)}


def size_text(height: int, width: int) -> str:
    return f"{height}×{width}"


def new_graph(name: str, title: str | None, **graph_attr: str):
    """An empty :class:`graphviz.Digraph` with bnnzoo's defaults and ``title`` on top."""
    import graphviz

    attrs = {**GRAPH, **graph_attr}
    if title:
        attrs["label"] = title
    return graphviz.Digraph(name=name, graph_attr=attrs, node_attr=dict(NODE_DEFAULTS), edge_attr=dict(EDGE_DEFAULTS))


def cluster_attrs(title: str | None) -> dict[str, str]:
    """The attributes of a titled cluster (a cell, or one genotype of a grid)."""
    return {**CLUSTER, **({"label": title} if title else {})}
