"""Measured counts of single candidates (an MBConv block, a cell op), cached.

The fitting tool and the search's resource penalty sum these instead of re-deriving formulas:
each number is the profiler's count of a module the builder makes, built on the meta device.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from bnnzoo.build.cell_ops import make_op
from bnnzoo.build.mbconv import BinaryMBConv
from bnnzoo.profile.counter import EQUIV_DIVISOR, memory_mb, profile_module


@dataclass(frozen=True)
class Counts:
    """Additive op and parameter counts."""

    bops: float = 0.0
    flops: float = 0.0
    binary_params: float = 0.0
    real_params: float = 0.0

    def __add__(self, other: Counts) -> Counts:
        return Counts(
            self.bops + other.bops,
            self.flops + other.flops,
            self.binary_params + other.binary_params,
            self.real_params + other.real_params,
        )

    def __sub__(self, other: Counts) -> Counts:
        return self + Counts(-other.bops, -other.flops, -other.binary_params, -other.real_params)

    def figures(self) -> dict[str, float]:
        return {
            "bops": self.bops,
            "flops": self.flops,
            "equiv_ops": self.flops + self.bops / EQUIV_DIVISOR,
            "params_mb": memory_mb(int(self.binary_params), int(self.real_params)),
        }


def measure(build: Callable[[], nn.Module], input_size: tuple[int, ...]) -> Counts:
    """The profiler's counts of the module that ``build()`` makes, built on the meta device."""
    with torch.device("meta"):
        module = build()
    result = profile_module(module, input_size)
    return Counts(result.bops, result.flops, result.binary_params, result.real_params)


@functools.cache
def mbconv_block_counts(cin: int, cout: int, kernel: int, expansion: int, stride: int, size: int) -> Counts:
    return measure(lambda: BinaryMBConv(cin, cout, kernel, expansion, stride), (cin, size, size))


@functools.cache
def cell_op_counts(op: str, channels: int, stride: int, size: int) -> Counts:
    return measure(lambda: make_op(op, channels, stride), (channels, size, size))
