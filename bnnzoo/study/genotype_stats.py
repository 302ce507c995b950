"""What a searched genotype prefers, how far apart two genotypes are, and when a search settled.

The statistics are those of the supplement's qualitative findings (Sec. 3 and 4):

- cells (bnas): per cell kind, ``ops`` (edges whose op is not ``none``), ``pool`` and ``conv``
  counts, ``pool_share`` = pool / (pool + conv), ``conv_share`` = 1 - pool_share, and ``k3_share``,
  the share of convolutions with a 3x3 kernel (``bin_conv_3x3`` and ``bin_dil_conv_3x3``; 5x5 else);
- layer lists (mbconv): ``blocks`` (MB layers, not skip), ``k3_share`` over MB layers, and the
  ``late_expansion`` and ``late_channels`` (mean expansion ratio e and expanded channels e x C_in)
  of the MB layers at the last resolution, i.e. from the last stride-2 layer on.

Values that are undefined (a share over no ops) are NaN and left out of means.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from bnnzoo.dsl.spaces import BNAS_POOL_OPS
from bnnzoo.dsl.types import Cell, CellNetwork, Genotype, LayerList, MBConv, Skip

CELL_STATS = ("ops", "pool_share", "conv_share", "k3_share")
LAYER_STATS = ("blocks", "k3_share", "late_expansion", "late_channels")


def _share(part: float, whole: float) -> float:
    return part / whole if whole else math.nan


def cell_stats(cell: Cell) -> dict[str, float]:
    """Op counts and shares of one cell (see the module docstring)."""
    ops = [edge.op for node in cell.nodes for edge in node.edges if edge.op != "none"]
    pools = sum(op in BNAS_POOL_OPS for op in ops)
    convs = [op for op in ops if op not in BNAS_POOL_OPS]
    k3 = sum(op.endswith("_3x3") for op in convs)
    return {
        "ops": float(len(ops)),
        "pool": float(pools),
        "conv": float(len(convs)),
        "k3": float(k3),
        "pool_share": _share(pools, len(ops)),
        "conv_share": _share(len(convs), len(ops)),
        "k3_share": _share(k3, len(convs)),
    }


def expanded_layers(body: LayerList) -> list[MBConv | Skip]:
    """The layers with their ``x N`` repeats written out."""
    return [layer for layer in body.layers for _ in range(layer.repeat)]


def layer_stats(genotype: Genotype) -> dict[str, float]:
    """Block counts, kernel shares and late-layer widths of a layer list (see the module docstring)."""
    layers = expanded_layers(genotype.body)
    channels, inputs = genotype.stem.channels, []
    for layer in layers:
        inputs.append(channels)
        if isinstance(layer, MBConv):
            channels = layer.channels
    indexed = [(i, layer, c_in) for i, (layer, c_in) in enumerate(zip(layers, inputs)) if isinstance(layer, MBConv)]
    blocks = [(layer, c_in) for _, layer, c_in in indexed]
    last_reduction = max((i for i, layer, _ in indexed if layer.stride > 1), default=0)
    late = [(layer, c_in) for i, layer, c_in in indexed if i >= last_reduction]
    return {
        "blocks": float(len(blocks)),
        "k3_share": _share(sum(layer.kernel == 3 for layer, _ in blocks), len(blocks)),
        "late_expansion": mean([float(layer.expansion) for layer, _ in late]),
        "late_channels": mean([float(layer.expansion * c_in) for layer, c_in in late]),
    }


def genotype_stats(genotype: Genotype) -> dict[str, float]:
    """The statistics of a genotype, flat: ``normal.ops``, ``reduction.pool_share``, ... or ``layers.k3_share``."""
    body = genotype.body
    if isinstance(body, CellNetwork):
        stats = {
            f"{cell.kind}.{key}": value
            for cell in (body.normal, body.reduction)
            for key, value in cell_stats(cell).items()
        }
        stats["cells.ops"] = (stats["normal.ops"] + stats["reduction.ops"]) / 2
        stats["cells.k3_share"] = _share(
            stats["normal.k3"] + stats["reduction.k3"], stats["normal.conv"] + stats["reduction.conv"]
        )
        return stats
    return {f"layers.{key}": value for key, value in layer_stats(genotype).items()}


def _choices(genotype: Genotype) -> list[Any]:
    """The genotype's decisions: per cell node the set of its (input, op) edges, or per layer its block."""
    body = genotype.body
    if isinstance(body, CellNetwork):
        return [
            frozenset((e.input, e.op) for e in node.edges)
            for cell in (body.normal, body.reduction)
            for node in cell.nodes
        ]
    return [
        ("skip",) if isinstance(layer, Skip) else (layer.kernel, layer.expansion) for layer in expanded_layers(body)
    ]


def genotype_distance(a: Genotype, b: Genotype) -> float:
    """How much two genotypes of one space differ, in [0, 1]: the share of differing decisions.

    Cells: per node, the share of its two edges (input and op) not in the other's node, averaged
    over the nodes of both cells. Layer lists: the share of layers with a different block.
    """
    first, second = _choices(a), _choices(b)
    if len(first) != len(second):
        raise ValueError("genotypes of different skeletons cannot be compared")
    if isinstance(a.body, CellNetwork):
        return mean([len(x - y) / max(len(x), 1) for x, y in zip(first, second)])
    return mean([float(x != y) for x, y in zip(first, second)])


def pairwise_distances(genotypes: Sequence[Genotype]) -> list[float]:
    """:func:`genotype_distance` of every pair."""
    return [genotype_distance(a, b) for i, a in enumerate(genotypes) for b in genotypes[i + 1 :]]


def stable_epochs(history: Sequence[dict[str, Any]]) -> int:
    """How many epochs before the end the derived genotype last changed (0: it changed in the last epoch)."""
    last_change = max((row["epoch"] for row in history if row["genotype_changed"]), default=1)
    return int(history[-1]["epoch"] - last_change) if history else 0


def mean(values: Sequence[float]) -> float:
    """The mean of the values that are not NaN (NaN if none are)."""
    kept = [v for v in values if not math.isnan(v)]
    return sum(kept) / len(kept) if kept else math.nan
