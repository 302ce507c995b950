"""The binary pieces a supernet needs beyond the final network's layers."""

from __future__ import annotations

from typing import Any

import torch


class _SignSTE(torch.autograd.Function):
    """sign(w) (sign(0) = +1) with the clipped straight-through gradient 1[|w| <= 1]."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.where(w >= 0, 1.0, -1.0).to(w.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1)


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    """sign(w) with the clipped straight-through gradient 1[|w| <= 1] (no scale)."""
    return _SignSTE.apply(w)
