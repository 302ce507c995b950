"""The published figures of the supplement's Table 3, shipped as data (``table3.json``)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True)
class PublishedRow:
    """One row of Table 3, in the table's units (BOPs in G, FLOPs and Equiv. Ops in M, Params in MB)."""

    model: str
    zoo: str | None
    search: str
    bops: float
    flops: float
    equiv_ops: float
    params: float | None
    cifar10_top1: float | None
    cifar100_top1: float | None

    def targets(self) -> dict[str, float]:
        """The op and size figures in base units: ops as counts, params in MB."""
        figures = {"bops": self.bops * 1e9, "flops": self.flops * 1e6, "equiv_ops": self.equiv_ops * 1e6}
        if self.params is not None:
            figures["params_mb"] = self.params
        return figures


@functools.cache
def table3() -> tuple[PublishedRow, ...]:
    data = json.loads(resources.files(__package__).joinpath("table3.json").read_text(encoding="utf-8"))
    return tuple(PublishedRow(**row) for row in data["rows"])


def published_row(zoo_name: str) -> PublishedRow | None:
    """The Table 3 row of a zoo model, or None when the paper has no figures for it."""
    return next((row for row in table3() if row.zoo == zoo_name), None)
