"""Network diagrams of layer-list genotypes, in the style of the supplement's Fig. 6.

The network is a chain: the input, the real-valued stem (dotted), one box per block with repeats
unrolled (binary ``MB k (e)`` and ``basic C`` blocks filled, ``skip`` dashed), a gray marker with
the new feature-map size after every stride-2 point, then the real-valued pooling and classifier
(dotted). A basic block whose shortcut needs a 1x1 downsample has it hanging below, dotted when
real-valued (Bi-Real Net), filled when binary (XNOR-Net). The chain wraps into rows of at most
:data:`ROW_ITEMS` boxes, so that long networks stay readable, and a legend closes the page.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bnnzoo.draw import style
from bnnzoo.dsl.types import Basic, Genotype, LayerList, MBConv, Skip

if TYPE_CHECKING:
    import graphviz

ROW_ITEMS = 8

LEGEND = (
    ("binary", "binary"),
    ("real", "real-valued"),
    ("identity", "skip (identity)"),
    ("boundary", "stride 2:\\nnew size"),
)


@dataclass(frozen=True)
class Box:
    """One box of the chain: a DOT id (without prefix), a label, a style kind and extra classes."""

    id: str
    label: str
    kind: str
    role: str
    note: Box | None = None


def chain(genotype: Genotype) -> list[Box]:
    """The boxes of a layer-list network, in order (see the module docstring)."""
    if not isinstance(genotype.body, LayerList):
        raise TypeError("chain() needs a layer-list genotype")
    in_channels, height, width = genotype.input_shape
    stem = genotype.stem
    stem_label = f"conv{stem.kernel}x{stem.kernel} {stem.channels}" + (" s2" if stem.stride == 2 else "")
    boxes = [
        Box("input", f"input\\n{in_channels}×{style.size_text(height, width)}", "input", "input"),
        Box("stem", stem_label, "real", "stem"),
    ]
    if stem.stride == 2:
        height, width = _halve(height), _halve(width)
        boxes.append(Box("size_stem", style.size_text(height, width), "boundary", "stride2"))
    channels = stem.channels
    for index, layer in enumerate(genotype.body.expanded()):
        box_id = f"b{index}"
        if isinstance(layer, MBConv):
            boxes.append(Box(box_id, f"MB{layer.kernel} ({layer.expansion})\\n{layer.channels}", "binary", "mbconv"))
        elif isinstance(layer, Basic):
            note = None
            if layer.stride != 1 or layer.channels != channels:
                kind = "real" if layer.downsample == "real" else "binary"
                note = Box(f"d{index}", f"{layer.downsample} 1x1\\ndownsample", kind, "downsample")
            boxes.append(Box(box_id, f"basic {layer.channels}", "binary", "basic", note))
        else:
            assert isinstance(layer, Skip)
            boxes.append(Box(box_id, "skip", "identity", "skip"))
        if getattr(layer, "stride", 1) == 2:
            height, width = _halve(height), _halve(width)
            boxes.append(Box(f"size{index}", style.size_text(height, width), "boundary", "stride2"))
        channels = getattr(layer, "channels", channels)
    boxes.append(Box("pool", genotype.head.pool, "real", "pool"))
    boxes.append(Box("fc", f"{genotype.head.classifier} {genotype.num_classes}", "real", "classifier"))
    return boxes


def _halve(size: int) -> int:
    # A strided "same" convolution and the ceil-mode AvgPool of the shortcuts both give ceil(n / 2).
    return (size + 1) // 2


def rows(items: Sequence[Box], width: int = ROW_ITEMS) -> list[list[Box]]:
    """Split the chain into as few rows of at most ``width`` boxes as possible, of even lengths."""
    count = max(1, math.ceil(len(items) / width))
    per_row = math.ceil(len(items) / count)
    return [list(items[start : start + per_row]) for start in range(0, len(items), per_row)]


def add_network(graph: graphviz.Digraph, genotype: Genotype, prefix: str = "") -> str:
    """Add the chain of ``genotype`` to ``graph``, ids after ``prefix``; return the last box's id."""
    boxes = chain(genotype)
    previous: str | None = None
    previous_has_notes = False
    row_start = ""
    for number, row in enumerate(rows(boxes)):
        with graph.subgraph(name=f"{prefix}row{number}") as line:
            line.attr(rank="same")
            for box in row:
                line.node(prefix + box.id, box.label, **style.node_attrs(box.kind, box.role))
            for left, right in zip(row, row[1:]):
                line.edge(prefix + left.id, prefix + right.id, **style.edge_attrs("flow"))
        if previous is not None:
            extra = {"minlen": "2"} if previous_has_notes else {}
            graph.edge(previous, prefix + row[0].id, **style.edge_attrs("flow"), weight="0", **extra)
            # Stacks the rows' first boxes, so that every row starts at the left.
            graph.edge(row_start, prefix + row[0].id, **style.edge_attrs("layout"), weight="10")
        row_start = prefix + row[0].id
        for box in row:
            if box.note is not None:
                note = box.note
                graph.node(prefix + note.id, note.label, **style.node_attrs(note.kind, note.role))
                attrs = {**style.edge_attrs(note.kind, note.role), "arrowhead": "none"}
                graph.edge(prefix + box.id, prefix + note.id, **attrs)
        previous = prefix + row[-1].id
        previous_has_notes = any(box.note is not None for box in row)
    return previous or ""


def add_legend(graph: graphviz.Digraph, genotypes: Sequence[Genotype], anchors: Sequence[str]) -> None:
    """A legend of the kinds of box the networks use, placed below the boxes ``anchors``."""
    kinds = {"binary", "real"}
    for genotype in genotypes:
        for box in chain(genotype):
            kinds.add(box.kind)
            if box.note is not None:
                kinds.add(box.note.kind)
    entries = [(kind, label) for kind, label in LEGEND if kind in kinds]
    with graph.subgraph(name="cluster_legend") as legend:
        legend.attr(**{**style.cluster_attrs("legend"), "fontsize": "11"})
        with legend.subgraph(name="legend_row") as line:
            line.attr(rank="same")
            for kind, label in entries:
                line.node(f"legend_{kind}", label, **{**style.NODE[kind], "class": f"legend {kind}"})
            for (left, _), (right, _) in zip(entries, entries[1:]):
                line.edge(f"legend_{left}", f"legend_{right}", **style.edge_attrs("layout", "legend"))
    for anchor in anchors:
        graph.edge(anchor, f"legend_{entries[0][0]}", **style.edge_attrs("layout", "legend"), weight="0")


def draw_network_genotype(genotype: Genotype, title: str | None = None) -> graphviz.Digraph:
    """The network of a layer-list genotype, with its legend, as a :class:`graphviz.Digraph`."""
    graph = style.new_graph(genotype.name, title or genotype.name)
    last = add_network(graph, genotype)
    add_legend(graph, [genotype], [last])
    return graph
