"""Fit genotypes to published op counts: a budget-constrained search driven by the profiler.

The paper's searched genotypes exist only as figures we do not have, so the zoo's searched models
are reconstructed by searching a documented space for a genotype whose BOPs, FLOPs, Equiv. Ops and
Params land on the published figures. The cost of every candidate block, cell op and fixed part is
measured by :func:`~bnnzoo.profile.counter.profile_module` on the modules the builder makes, and
cached, so the search sums measured counts rather than a second formula.

Two spaces (see docs/reconstruction.md):

* :class:`MBConvSpace`: a real stem, four resolution stages with a fixed depth each, every layer a
  binary ``MB k (e)`` block or ``skip`` (not the first layer of a stage, which changes the shape);
  stage widths from a grid, never narrowing.
* :class:`CellSpace`: the BNAS template with fixed macro settings; each cell has 4 nodes with 2
  edges over the BNAS op set.

The objective is the largest relative error over the four figures plus small preference terms
that encode the supplement's qualitative findings (Sec. 3-4).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

from torch import nn

from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl.construct import cell_genotype, default_reductions, mbconv_genotype
from bnnzoo.dsl.spaces import (
    BNAS_OPS,
    BNAS_POOL_OPS,
    CELL_INPUTS,
    MBCONV_SEARCH_EXPANSIONS,
    MBCONV_SEARCH_KERNELS,
    MBCONV_STAGE_DEPTHS,
    MBCONV_STAGE_STRIDES,
    reduced_size,
)
from bnnzoo.dsl.types import Cell, Edge, Genotype, MBConv, Node, Skip
from bnnzoo.profile.candidates import Counts, cell_op_counts, mbconv_block_counts, measure
from bnnzoo.profile.counter import EQUIV_DIVISOR

FIGURES = ("bops", "flops", "equiv_ops", "params_mb")


def relative_errors(figures: dict[str, float], targets: dict[str, float]) -> dict[str, float]:
    """Signed relative error of each figure against its target."""
    return {key: figures[key] / target - 1 for key, target in targets.items() if target}


def worst_error(figures: dict[str, float], targets: dict[str, float]) -> float:
    return max(abs(error) for error in relative_errors(figures, targets).values())


# -- a small annealing driver -------------------------------------------------------------------

State = TypeVar("State")


@dataclass
class FitResult(Generic[State]):
    state: State
    cost: float
    figures: dict[str, float] = field(default_factory=dict)


def anneal(
    initial: State,
    mutate: Callable[[State, random.Random], State],
    cost: Callable[[State], float],
    iterations: int,
    rng: random.Random,
    temperature: float = 0.05,
    on_step: Callable[[], object] | None = None,
) -> tuple[State, float]:
    """Simulated annealing with a linear cooling schedule; returns the best state seen.
    ``on_step`` is called after every step (a progress bar's update)."""
    current, current_cost = initial, cost(initial)
    best, best_cost = current, current_cost
    for step in range(iterations):
        if on_step is not None:
            on_step()
        heat = temperature * (1 - step / iterations) + 1e-9
        candidate = mutate(current, rng)
        candidate_cost = cost(candidate)
        if candidate_cost < current_cost or rng.random() < math.exp((current_cost - candidate_cost) / heat):
            current, current_cost = candidate, candidate_cost
            if current_cost < best_cost:
                best, best_cost = current, current_cost
    return best, best_cost


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

    def _ends(self, stem: int, last: int) -> Counts:
        channels, height, width = self.space.input_shape
        stem_counts = measure(lambda: nn.Conv2d(channels, stem, 3, padding=1, bias=False), (channels, height, width))
        return stem_counts + measure(lambda: nn.Linear(last, self.space.num_classes), (last,))

    def counts(self, candidate: MBConvCandidate) -> Counts:
        total = self._ends(candidate.stem, max(candidate.widths[-1], candidate.stem))
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
        rng = random.Random(seed)
        best: tuple[MBConvCandidate, float] | None = None
        for _ in range(restarts):
            start = self.random_candidate(rng)
            state, cost = anneal(start, self.mutate, self.cost, iterations, rng, on_step=on_step)
            if best is None or cost < best[1]:
                best = (state, cost)
        assert best is not None
        return FitResult(best[0], best[1], self.counts(best[0]).figures())

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

CellEdges = tuple[tuple[str, int], ...]  # 8 (op, input) pairs, two per node


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
        self.fixed = self._measure_fixed()
        self._positions = self.op_positions()

    def _skeleton(self, normal: CellEdges, reduction: CellEdges, name: str = "fit", **header) -> Genotype:
        space = self.space
        cells = _cell("normal", normal), _cell("reduction", reduction)
        shape = space.input_shape, space.num_classes, space.layers, space.channels
        return cell_genotype(name, *shape, *cells, space.stem_multiplier, **header)

    def _measure_fixed(self) -> Counts:
        """Stem, preprocessing, reduction shortcuts and classifier: a network whose edges are all none."""
        empty = tuple(
            ("none", CELL_INPUTS + node - 1 if edge else 0) for node in range(self.space.nodes) for edge in (0, 1)
        )
        genotype = self._skeleton(empty, empty)
        return measure(lambda: BinaryNet(genotype), genotype.input_shape)

    def op_positions(self) -> dict[str, list[tuple[int, int]]]:
        """For each cell kind, the (channels, input size) of every cell of that kind."""
        space = self.space
        channels, size = space.channels, space.input_shape[1]
        positions: dict[str, list[tuple[int, int]]] = {"normal": [], "reduction": []}
        for index in range(space.layers):
            if index in space.reductions:
                positions["reduction"].append((channels * 2, size))
                channels, size = channels * 2, reduced_size(size)
            else:
                positions["normal"].append((channels, size))
        return positions

    def counts(self, candidate: CellCandidate) -> Counts:
        total = self.fixed
        for kind, edges in (("normal", candidate.normal), ("reduction", candidate.reduction)):
            for channels, size in self._positions[kind]:
                for op, source in edges:
                    if op == "none":
                        continue
                    reduce = kind == "reduction" and source < CELL_INPUTS
                    op_size = size if kind == "normal" or reduce else reduced_size(size)
                    total = total + cell_op_counts(op, channels, 2 if reduce else 1, op_size)
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
        rng = random.Random(seed)
        best: tuple[CellCandidate, float] | None = None
        for _ in range(restarts):
            start = CellCandidate(self.random_cell(rng), self.random_cell(rng))
            state, cost = anneal(start, self.mutate, self.cost, iterations, rng, on_step=on_step)
            if best is None or cost < best[1]:
                best = (state, cost)
        assert best is not None
        return FitResult(best[0], best[1], self.counts(best[0]).figures())

    def genotype(self, candidate: CellCandidate, name: str, **header) -> Genotype:
        return self._skeleton(candidate.normal, candidate.reduction, name, **header)


def _lean(edges: CellEdges) -> int:
    """Convolutions minus pools among a cell's edges."""
    convs = sum(1 for op, _ in edges if op.startswith("bin_"))
    pools = sum(1 for op, _ in edges if op in BNAS_POOL_OPS)
    return convs - pools


def _cell(kind: str, edges: CellEdges) -> Cell:
    nodes = tuple(
        Node(CELL_INPUTS + node, tuple(Edge(op, source) for op, source in edges[2 * node : 2 * node + 2]))
        for node in range(len(edges) // 2)
    )
    return Cell(kind, nodes, tuple(node.index for node in nodes))


# -- the zoo's reconstructions --------------------------------------------------------------------

# Macro settings of the paper's BNAS-space models: Table 3's caption gives (10, 20, 16) layers; the
# FLOPs column pins the initial channels at (24, 36, 48) (REFERENCE.md: 32 channels would not give
# BNAS-A's 87.98 M FLOPs).
CELL_MACROS: dict[str, tuple[int, int]] = {"bnas_mini": (10, 24), "bnas_a": (20, 36), "bnas_cm": (16, 48)}


def fit_published(
    name: str, iterations: int = 3000, restarts: int = 4, seed: int = 0, on_step: Callable[[], object] | None = None
) -> tuple[Genotype, dict]:
    """Reconstruct zoo model ``name`` from its Table 3 row; return the genotype and a fit report.
    ``on_step`` is called after each of the ``iterations * restarts`` annealing steps."""
    from bnnzoo.errors import BnnzooError
    from bnnzoo.profile.published import published_row

    row = published_row(name)
    if row is None or not (name.startswith("mbconv_") or name in CELL_MACROS):
        raise BnnzooError(f"no published figures to fit for '{name}'")
    targets = row.targets()
    if name in CELL_MACROS:
        fitter: MBConvFitter | CellFitter = CellFitter(CellSpace(*CELL_MACROS[name]), targets)
    else:
        fitter = MBConvFitter(MBConvSpace(), targets)
    result = fitter.fit(iterations=iterations, restarts=restarts, seed=seed, on_step=on_step)
    report = {
        "model": row.model,
        "targets": targets,
        "figures": result.figures,
        "errors": relative_errors(result.figures, targets),
        "iterations": iterations,
        "restarts": restarts,
        "seed": seed,
    }
    comments = reconstruction_comments(report)
    genotype = fitter.genotype(result.state, name, comments=tuple(comments), meta=_published_meta(row))
    return genotype, report


def _published_meta(row) -> tuple[tuple[str, str], ...]:
    meta = [
        ("paper", "Ahn et al., WACV 2023"),
        ("reconstruction", "true"),
        ("published.bops", f"{row.bops} G"),
        ("published.flops", f"{row.flops} M"),
        ("published.equiv_ops", f"{row.equiv_ops} M"),
        ("published.params", f"{row.params} MB"),
    ]
    for dataset, value in (("cifar10", row.cifar10_top1), ("cifar100", row.cifar100_top1)):
        if value is not None:
            meta.append((f"published.{dataset}_top1", f"{value}"))
    return tuple(meta)


def reconstruction_comments(report: dict) -> list[str]:
    """The header of a reconstructed genotype file: what it is, what it matches, how it was found."""
    figures, targets, errors = report["figures"], report["targets"], report["errors"]

    def show(key: str, value: float) -> str:
        if key == "bops":
            return f"{value / 1e9:.3f} G"
        if key == "params_mb":
            return f"{value:.2f} MB"
        return f"{value / 1e6:.2f} M"

    lines = [
        f"{report['model']}: a RECONSTRUCTION, not the paper's genotype.",
        "The paper's searched genotypes exist only as figures that are not available. This genotype",
        "was fitted to the published op counts of the supplement's Table 3 by `bnnzoo fit --published`",
        f"(simulated annealing, {report['restarts']} restarts x {report['iterations']} steps, seed {report['seed']}),",
        "inside the space documented in docs/reconstruction.md, with the supplement's qualitative findings",
        "as preferences. Its accuracy is NOT the paper's.",
        "",
        "figure        published      this genotype   difference",
    ]
    implied = targets["flops"] + targets["bops"] / EQUIV_DIVISOR
    if abs(implied / targets["equiv_ops"] - 1) > 0.01:
        lines[-1:-1] = [
            f"The published row is not self-consistent: FLOPs + BOPs/64 = {implied / 1e6:.2f} M, not the",
            f"published {targets['equiv_ops'] / 1e6:.2f} M Equiv. Ops, so no genotype can match all four exactly.",
            "",
        ]
    names = {"bops": "BOPs", "flops": "FLOPs", "equiv_ops": "Equiv. Ops", "params_mb": "Params"}
    for key in FIGURES:
        if key in targets:
            lines.append(
                f"{names[key]:13s} {show(key, targets[key]):>11s}    {show(key, figures[key]):>11s}"
                f"     {errors[key] * 100:+.1f}%"
            )
    return lines
