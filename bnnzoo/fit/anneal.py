"""The fit's objective (relative errors against target figures) and a small simulated-annealing driver."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

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


def best_of_restarts(
    start: Callable[[random.Random], State],
    mutate: Callable[[State, random.Random], State],
    cost: Callable[[State], float],
    iterations: int,
    restarts: int,
    seed: int,
    on_step: Callable[[], object] | None = None,
) -> tuple[State, float]:
    """:func:`anneal` from ``restarts`` random starts drawn by ``start`` (one seeded generator); the best wins."""
    rng = random.Random(seed)
    best: tuple[State, float] | None = None
    for _ in range(restarts):
        state, state_cost = anneal(start(rng), mutate, cost, iterations, rng, on_step=on_step)
        if best is None or state_cost < best[1]:
            best = (state, state_cost)
    assert best is not None
    return best
