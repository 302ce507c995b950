"""The canonical printer: one text for each genotype.

Canonical form: the leading comment block, ``bnnzoo 1``, the header settings in a fixed order,
the ``meta`` lines in their order, a blank line, then the body. Defaults that change nothing
(stride 1, repeat 1) are left out; everything else is written out.
"""

from __future__ import annotations

import json

from bnnzoo.dsl.types import Basic, Cell, CellNetwork, Genotype, Layer, LayerList, MBConv, Skip

INDENT = "  "


def to_text(genotype: Genotype) -> str:
    """Return the canonical text of ``genotype``."""
    lines = [f"# {comment}".rstrip() for comment in genotype.comments]
    lines += [
        f"bnnzoo {genotype.version}",
        f"name {genotype.name}",
        f"space {genotype.space}",
        "input " + "x".join(str(size) for size in genotype.input_shape),
        f"classes {genotype.num_classes}",
        _stem(genotype),
        f"head {genotype.head.pool} {genotype.head.classifier}",
    ]
    if genotype.space == "mbconv":
        lines.append(f"shortcut {genotype.shortcut}")
    if isinstance(genotype.body, CellNetwork):
        body = genotype.body
        lines += [
            f"layers {body.layers}",
            f"channels {body.channels}",
            " ".join(["reductions", *(str(index) for index in body.reductions)]),
        ]
    lines += [f"meta {key} = {json.dumps(value, ensure_ascii=False)}" for key, value in genotype.meta]
    lines.append("")
    if isinstance(genotype.body, LayerList):
        lines += ["layers {", *(INDENT + layer_text(layer) for layer in genotype.body.layers), "}"]
    else:
        lines += _cell(genotype.body.normal) + [""] + _cell(genotype.body.reduction)
    return "\n".join(lines) + "\n"


def layer_text(layer: Layer) -> str:
    """One layer line, e.g. ``MB5(6) 64 s2 x2``."""
    if isinstance(layer, MBConv):
        words = [f"MB{layer.kernel}({layer.expansion})", str(layer.channels)]
    elif isinstance(layer, Basic):
        words = [f"basic({layer.downsample})", str(layer.channels)]
    else:
        assert isinstance(layer, Skip)
        words = ["skip"]
    if getattr(layer, "stride", 1) != 1:
        words.append(f"s{layer.stride}")
    if layer.repeat != 1:
        words.append(f"x{layer.repeat}")
    return " ".join(words)


def _stem(genotype: Genotype) -> str:
    stem = genotype.stem
    text = f"stem conv{stem.kernel}x{stem.kernel} {stem.channels}"
    return text + (f" s{stem.stride}" if stem.stride != 1 else "")


def _cell(cell: Cell) -> list[str]:
    lines = [f"cell {cell.kind} {{"]
    for node in cell.nodes:
        edges = " + ".join(f"{edge.op}({edge.input})" for edge in node.edges)
        lines.append(f"{INDENT}node {node.index} = {edges}")
    lines.append(INDENT + "concat " + " ".join(str(index) for index in cell.concat))
    lines.append("}")
    return lines
