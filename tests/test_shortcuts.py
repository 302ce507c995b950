"""Exact behaviour of the reduction shortcut in bnnzoo.build.shortcuts."""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from bnnzoo.build.shortcuts import SHORTCUT_KINDS, ReductionShortcut
from bnnzoo.errors import ModelError


def _input() -> torch.Tensor:
    return torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)


# AvgPool2d(2, 2) of _input(): channel 0 holds 0..15, channel 1 holds 16..31.
POOLED_0 = torch.tensor([[2.5, 4.5], [10.5, 12.5]])
POOLED_1 = torch.tensor([[18.5, 20.5], [26.5, 28.5]])


def test_kinds() -> None:
    assert SHORTCUT_KINDS == ("partial_duplicate", "zero", "global_average")


@pytest.mark.parametrize("kind", SHORTCUT_KINDS)
def test_equal_channels_is_the_pool(kind: str) -> None:
    out = ReductionShortcut(2, 2, 2, kind)(_input())
    assert out.shape == (1, 2, 2, 2)
    assert torch.equal(out[0, 0], POOLED_0)
    assert torch.equal(out[0, 1], POOLED_1)


def test_zero_fill() -> None:
    out = ReductionShortcut(2, 4, 2, "zero")(_input())
    assert out.shape == (1, 4, 2, 2)
    assert torch.equal(out[0, 0], POOLED_0)
    assert torch.equal(out[0, 1], POOLED_1)
    assert torch.equal(out[0, 2:], torch.zeros(2, 2, 2))


def test_partial_duplicate_fill() -> None:
    out = ReductionShortcut(2, 3, 2, "partial_duplicate")(_input())
    assert out.shape == (1, 3, 2, 2)
    assert torch.equal(out[0, 2], POOLED_0)


def test_partial_duplicate_repeats_cyclically() -> None:
    out = ReductionShortcut(2, 7, 2, "partial_duplicate")(_input())
    assert out.shape == (1, 7, 2, 2)
    expected = [POOLED_0, POOLED_1, POOLED_0, POOLED_1, POOLED_0, POOLED_1, POOLED_0]
    for channel, value in enumerate(expected):
        assert torch.equal(out[0, channel], value), channel


def test_partial_duplicate_with_extra_equal_to_in_channels() -> None:
    out = ReductionShortcut(2, 4, 2, "partial_duplicate")(_input())
    assert torch.equal(out[0, 2:], out[0, :2])


def test_global_average_fill() -> None:
    out = ReductionShortcut(2, 5, 2, "global_average")(_input())
    assert out.shape == (1, 5, 2, 2)
    mean = torch.tensor([[10.5, 12.5], [18.5, 20.5]])
    assert torch.equal(out[0, 0], POOLED_0)
    assert torch.equal(out[0, 1], POOLED_1)
    for channel in (2, 3, 4):
        assert torch.equal(out[0, channel], mean)


def test_stride_one_has_no_pool() -> None:
    x = _input()
    out = ReductionShortcut(2, 3, 1, "partial_duplicate")(x)
    assert out.shape == (1, 3, 4, 4)
    assert torch.equal(out[:, :2], x)
    assert torch.equal(out[:, 2], x[:, 0])


def test_odd_size_averages_only_inside_values() -> None:
    x = torch.arange(25, dtype=torch.float32).view(1, 1, 5, 5)
    out = ReductionShortcut(1, 1, 2, "zero")(x)
    expected = torch.tensor(
        [
            [(0 + 1 + 5 + 6) / 4, (2 + 3 + 7 + 8) / 4, (4 + 9) / 2],
            [(10 + 11 + 15 + 16) / 4, (12 + 13 + 17 + 18) / 4, (14 + 19) / 2],
            [(20 + 21) / 2, (22 + 23) / 2, 24.0],
        ]
    )
    assert torch.equal(out[0, 0], expected)


def test_fewer_output_channels_is_an_error() -> None:
    with pytest.raises(ModelError, match=r"out_channels=2 < in_channels=4"):
        ReductionShortcut(4, 2, 2, "partial_duplicate")


def test_unknown_kind_is_an_error() -> None:
    with pytest.raises(ModelError, match="unknown shortcut kind 'conv'"):
        ReductionShortcut(2, 4, 2, "conv")


def test_bad_stride_is_an_error() -> None:
    with pytest.raises(ModelError, match="stride"):
        ReductionShortcut(2, 4, 0, "zero")


class _RecordOps(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.names.append(getattr(func, "__name__", str(func)))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("kind", SHORTCUT_KINDS)
def test_no_parameters_and_no_matmul(kind: str) -> None:
    shortcut = ReductionShortcut(4, 12, 2, kind)
    assert list(shortcut.parameters()) == []
    assert list(shortcut.buffers()) == []
    x = torch.randn(2, 4, 7, 7, requires_grad=True)
    with _RecordOps() as recorder:
        out = shortcut(x)
    assert out.shape == (2, 12, 4, 4)
    forbidden = {"mm", "matmul", "bmm", "addmm", "linear", "conv2d", "einsum"}
    assert not forbidden & set(recorder.names), recorder.names
    out.sum().backward()
    assert x.grad is not None
