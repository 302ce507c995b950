"""The two fitted spaces and their fitters: MBConv layer lists and BNAS cells (see docs/reconstruction.md).

* :class:`MBConvSpace`: a real stem, four resolution stages with a fixed depth each, every layer a
  binary ``MB k (e)`` block or ``skip`` (not the first layer of a stage, which changes the shape);
  stage widths from a grid, never narrowing.
* :class:`CellSpace`: the BNAS template with fixed macro settings; each cell has 4 nodes with 2
  edges over the BNAS op set.

Candidates are costed with :mod:`bnnzoo.profile.candidates`, the cost model the search uses too.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, replace

from bnnzoo.dsl.construct import cell_genotype, default_reductions, mbconv_genotype
from bnnzoo.dsl.spaces import (
    BNAS_OPS,
    BNAS_POOL_OPS,
    CELL_INPUTS,
    MBCONV_SEARCH_EXPANSIONS,
    MBCONV_SEARCH_KERNELS,
    MBCONV_STAGE_DEPTHS,
    MBCONV_STAGE_STRIDES,
)
from bnnzoo.dsl.types import Genotype, MBConv, Skip
from bnnzoo.fit.anneal import FitResult, best_of_restarts, worst_error
from bnnzoo.profile.candidates import (
    CellEdges,
    Counts,
    cell_edge_counts,
    cell_fixed_counts,
    cell_from_edges,
    cell_positions,
    mbconv_block_counts,
    mbconv_fixed_counts,
)

# -- the MBConv layer-list space ----------------------------------------------------------------

Choice = tuple[int, int] | None  # (kernel, expansion), or None for skip


@dataclass(frozen=True)
class MBConvSpace:
    """A CIFAR-style MBConv macro skeleton and its per-layer choices."""

    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    stem_channels: tuple[int, ...] = tuple(range(32, 81, 2))
    stage_widths: tuple[tuple[int, ...], ...] = (
        (32, 40, 48, 56, 64, 72, 80),
        (48, 64, 80, 96, 128),
        (96, 128, 160, 192, 224, 256),
        (160, 192, 224, 256, 320, 384, 448, 512),
    )
    stage_depths: tuple[int, ...] = MBCONV_STAGE_DEPTHS
    stage_strides: tuple[int, ...] = MBCONV_STAGE_STRIDES
    kernels: tuple[int, ...] = MBCONV_SEARCH_KERNELS
    expansions: tuple[int, ...] = MBCONV_SEARCH_EXPANSIONS
    kernel5_penalty: float = 0.002  # weight noise prefers k = 3 (supplement Sec. 4)

    def choices(self, first_in_stage: bool) -> list[Choice]:
        options: list[Choice] = [(k, e) for k in self.kernels for e in self.expansions]
        return options if first_in_stage else [*options, None]


@dataclass(frozen=True)
class MBConvCandidate:
    stem: int
    widths: tuple[int, ...]
    layers: tuple[tuple[Choice, ...], ...]


class MBConvFitter:
    """Search :class:`MBConvSpace` for a genotype that lands on target figures."""

    def __init__(self, space: MBConvSpace, targets: dict[str, float]) -> None:
        self.space = space
        self.targets = targets

    def counts(self, candidate: MBConvCandidate) -> Counts:
        last = max(candidate.widths[-1], candidate.stem)
        total = mbconv_fixed_counts(self.space.input_shape, candidate.stem, last, self.space.num_classes)
        cin, size = candidate.stem, self.space.input_shape[1]
        for width, stride, layers in zip(candidate.widths, self.space.stage_strides, candidate.layers):
            for index, choice in enumerate(layers):
                if choice is None:
                    continue
                layer_stride = stride if index == 0 else 1
                total = total + mbconv_block_counts(cin, width, *choice, layer_stride, size)
                cin = width
                size = -(-size // layer_stride)
        return total

    def cost(self, candidate: MBConvCandidate) -> float:
        if any(b < a for a, b in zip((candidate.stem, *candidate.widths), candidate.widths)):
            return math.inf
        kernel5 = sum(1 for stage in candidate.layers for c in stage if c is not None and c[0] == 5)
        return worst_error(self.counts(candidate).figures(), self.targets) + self.space.kernel5_penalty * kernel5

    def random_candidate(self, rng: random.Random) -> MBConvCandidate:
        space = self.space
        widths = tuple(sorted(rng.choice(options) for options in space.stage_widths))
        layers = tuple(
            tuple(rng.choice(space.choices(index == 0)) for index in range(depth)) for depth in space.stage_depths
        )
        return MBConvCandidate(rng.choice(space.stem_channels), widths, layers)

    def mutate(self, candidate: MBConvCandidate, rng: random.Random) -> MBConvCandidate:
        space = self.space
        move = rng.random()
        if move < 0.15:
            return replace(candidate, stem=rng.choice(space.stem_channels))
        if move < 0.35:
            stage = rng.randrange(len(space.stage_widths))
            widths = list(candidate.widths)
            widths[stage] = rng.choice(space.stage_widths[stage])
            return replace(candidate, widths=tuple(widths))
        stage = rng.randrange(len(candidate.layers))
        index = rng.randrange(len(candidate.layers[stage]))
        layers = [list(layer) for layer in candidate.layers]
        layers[stage][index] = rng.choice(space.choices(index == 0))
        return replace(candidate, layers=tuple(tuple(layer) for layer in layers))

    def fit(
        self, iterations: int = 4000, restarts: int = 4, seed: int = 0, on_step: Callable[[], object] | None = None
    ) -> FitResult[MBConvCandidate]:
        state, cost = best_of_restarts(
            self.random_candidate, self.mutate, self.cost, iterations, restarts, seed, on_step=on_step
        )
        return FitResult(state, cost, self.counts(state).figures())

    def genotype(self, candidate: MBConvCandidate, name: str, **header) -> Genotype:
        layers: list[MBConv | Skip] = []
        for width, stride, stage in zip(candidate.widths, self.space.stage_strides, candidate.layers):
            for index, choice in enumerate(stage):
                if choice is None:
                    layers.append(Skip())
                else:
                    layers.append(MBConv(choice[0], choice[1], width, stride if index == 0 else 1))
        space = self.space
        return mbconv_genotype(name, space.input_shape, space.num_classes, candidate.stem, layers, **header)


# -- the BNAS cell space ------------------------------------------------------------------------


@dataclass(frozen=True)
class CellSpace:
    """The BNAS template with fixed macro settings; the cells are searched."""

    layers: int
    channels: int
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10
    stem_multiplier: int = 3
    nodes: int = 4
    ops: tuple[str, ...] = BNAS_OPS
    lean_penalty: float = 0.01  # normal cells lean to pooling, reduction cells to convolutions

    @property
    def reductions(self) -> tuple[int, ...]:
        return default_reductions(self.layers)


@dataclass(frozen=True)
class CellCandidate:
    normal: CellEdges
    reduction: CellEdges


class CellFitter:
    """Search :class:`CellSpace` for normal and reduction cells that land on target figures."""

    def __init__(self, space: CellSpace, targets: dict[str, float]) -> None:
        self.space = space
        self.targets = targets
        shape = space.input_shape, space.num_classes, space.layers, space.channels, space.stem_multiplier
        self.fixed = cell_fixed_counts(*shape, space.nodes)
        self._positions = cell_positions(space.layers, space.channels, space.input_shape[1])

    def _skeleton(self, normal: CellEdges, reduction: CellEdges, name: str = "fit", **header) -> Genotype:
        space = self.space
        cells = cell_from_edges("normal", normal), cell_from_edges("reduction", reduction)
        shape = space.input_shape, space.num_classes, space.layers, space.channels
        return cell_genotype(name, *shape, *cells, space.stem_multiplier, **header)

    def op_positions(self) -> dict[str, list[tuple[int, int]]]:
        """For each cell kind, the (channels, input size) of every cell of that kind."""
        return self._positions

    def counts(self, candidate: CellCandidate) -> Counts:
        total = self.fixed
        for kind, edges in (("normal", candidate.normal), ("reduction", candidate.reduction)):
            for channels, size in self._positions[kind]:
                for op, source in edges:
                    if op != "none":
                        total = total + cell_edge_counts(kind, op, source, channels, size)
        return total

    def cost(self, candidate: CellCandidate) -> float:
        # Normal cells should not have more convolutions than pools, reduction cells more.
        leaning_wrong = max(0, _lean(candidate.normal)) + max(0, 1 - _lean(candidate.reduction))
        penalty = self.space.lean_penalty * leaning_wrong
        return worst_error(self.counts(candidate).figures(), self.targets) + penalty

    def random_cell(self, rng: random.Random) -> CellEdges:
        """Two edges per node from two distinct earlier states, as DARTS derivation gives."""
        return tuple(
            (rng.choice(self.space.ops), source)
            for node in range(self.space.nodes)
            for source in rng.sample(range(CELL_INPUTS + node), 2)
        )

    def mutate(self, candidate: CellCandidate, rng: random.Random) -> CellCandidate:
        kind = rng.choice(("normal", "reduction"))
        edges = list(getattr(candidate, kind))
        index = rng.randrange(len(edges))
        node = index // 2
        op, source = edges[index]
        if rng.random() < 0.7:
            op = rng.choice(self.space.ops)
        else:
            sibling = edges[index ^ 1][1]
            source = rng.choice([s for s in range(CELL_INPUTS + node) if s != sibling])
        edges[index] = (op, source)
        return replace(candidate, **{kind: tuple(edges)})

    def fit(
        self, iterations: int = 3000, restarts: int = 4, seed: int = 0, on_step: Callable[[], object] | None = None
    ) -> FitResult[CellCandidate]:
        def start(rng: random.Random) -> CellCandidate:
            return CellCandidate(self.random_cell(rng), self.random_cell(rng))

        state, cost = best_of_restarts(start, self.mutate, self.cost, iterations, restarts, seed, on_step=on_step)
        return FitResult(state, cost, self.counts(state).figures())

    def genotype(self, candidate: CellCandidate, name: str, **header) -> Genotype:
        return self._skeleton(candidate.normal, candidate.reduction, name, **header)


def _lean(edges: CellEdges) -> int:
    """Convolutions minus pools among a cell's edges."""
    convs = sum(1 for op, _ in edges if op.startswith("bin_"))
    pools = sum(1 for op, _ in edges if op in BNAS_POOL_OPS)
    return convs - pools
