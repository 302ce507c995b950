"""Build genotypes in code: the constructors the fitting tool and the search share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from bnnzoo.dsl.spaces import DEFAULT_SHORTCUT
from bnnzoo.dsl.types import Cell, CellNetwork, Genotype, Head, LayerList, MBConv, Skip, Stem


def default_reductions(layers: int) -> tuple[int, ...]:
    """BNAS puts the reductions at cells layers // 3 and 2 * layers // 3 (the first cell when layers < 3)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def cell_genotype(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    layers: int,
    channels: int,
    normal: Cell,
    reduction: Cell,
    stem_multiplier: int = 3,
    **header,
) -> Genotype:
    """A BNAS-template genotype with a 3x3 stem of ``stem_multiplier * channels``."""
    body = CellNetwork(layers, channels, default_reductions(layers), normal, reduction)
    return Genotype(
        name=name,
        space="bnas",
        input_shape=input_shape,
        num_classes=num_classes,
        stem=Stem(3, stem_multiplier * channels),
        head=Head(),
        body=body,
        **header,
    )


def mbconv_genotype(
    name: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    stem_channels: int,
    layers: Sequence[MBConv | Skip],
    shortcut: str = DEFAULT_SHORTCUT,
    **header,
) -> Genotype:
    """An MBConv layer-list genotype; runs of identical stride-1 layers are folded into repeats."""
    return Genotype(
        name=name,
        space="mbconv",
        input_shape=input_shape,
        num_classes=num_classes,
        stem=Stem(3, stem_channels),
        head=Head(),
        body=LayerList(tuple(merge_repeats(layers))),
        shortcut=shortcut,
        **header,
    )


def merge_repeats(layers: Sequence[MBConv | Skip]) -> list[MBConv | Skip]:
    """Fold runs of identical stride-1 layers into ``xN`` repeats."""
    merged: list[MBConv | Skip] = []
    for layer in layers:
        previous = merged[-1] if merged else None
        if previous is not None and getattr(layer, "stride", 1) == 1 and _same_block(previous, layer):
            merged[-1] = replace(previous, repeat=previous.repeat + 1)
        else:
            merged.append(layer)
    return merged


def _same_block(a: MBConv | Skip, b: MBConv | Skip) -> bool:
    if isinstance(a, Skip) or isinstance(b, Skip):
        return isinstance(a, Skip) and isinstance(b, Skip)
    return (a.kernel, a.expansion, a.channels) == (b.kernel, b.expansion, b.channels)
