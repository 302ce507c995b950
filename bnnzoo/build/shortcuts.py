"""The reduction shortcut of the binary MBConv block (supplement, Sec. 1).

A reduction block may change both the resolution and the channel count, yet its shortcut must not use a
floating-point matrix multiplication. The shortcut average-pools the input (``X_AP``, ``C_in`` channels)
and fills it up to ``C_out`` channels in one of three ways (``SHORTCUT_KINDS``):

* ``"partial_duplicate"`` (the default; it won every row of the supplement's Table 1): concatenate
  ``X_AP[:, :C_out - C_in]``. When ``C_out - C_in > C_in`` the channels of ``X_AP`` are repeated
  cyclically until filled, i.e. extra channel ``j`` is ``X_AP[:, j % C_in]``;
* ``"zero"``: concatenate ``C_out - C_in`` zero channels;
* ``"global_average"``: concatenate the channel mean of ``X_AP``, repeated ``C_out - C_in`` times.
"""

from __future__ import annotations

import torch
from torch import nn

from bnnzoo.dsl.spaces import SHORTCUT_KINDS
from bnnzoo.errors import ModelError

__all__ = ["SHORTCUT_KINDS", "ReductionShortcut"]


class ReductionShortcut(nn.Module):
    """Parameter-free shortcut: ``AvgPool(stride)`` then fill from ``in_channels`` up to ``out_channels``.

    The pool is ``AvgPool2d(kernel_size=stride, stride=stride, ceil_mode=True, count_include_pad=False)``,
    so odd sizes work: an edge window that runs past the input averages only the values inside it. With
    ``stride == 1`` there is no pool. ``out_channels < in_channels`` raises :class:`ModelError`.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2, kind: str = "partial_duplicate") -> None:
        super().__init__()
        if kind not in SHORTCUT_KINDS:
            raise ModelError(f"unknown shortcut kind {kind!r}; expected one of {', '.join(SHORTCUT_KINDS)}")
        if in_channels < 1 or out_channels < 1:
            raise ModelError(
                f"shortcut channels must be positive, got in_channels={in_channels}, out_channels={out_channels}"
            )
        if out_channels < in_channels:
            raise ModelError(
                f"reduction shortcut cannot reduce channels: out_channels={out_channels} < "
                f"in_channels={in_channels} (it can only keep or add channels)"
            )
        if not isinstance(stride, int) or stride < 1:
            raise ModelError(f"shortcut stride must be a positive integer, got {stride!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.stride = stride
        self.kind = kind
        self.pool: nn.Module = (
            nn.AvgPool2d(stride, stride=stride, ceil_mode=True, count_include_pad=False)
            if stride > 1
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(x)
        extra = self.out_channels - self.in_channels
        if extra == 0:
            return pooled
        if self.kind == "zero":
            fill = pooled.new_zeros(pooled.shape[0], extra, pooled.shape[2], pooled.shape[3])
        elif self.kind == "partial_duplicate":
            repeats = -(-extra // self.in_channels)  # ceil division
            fill = pooled.repeat(1, repeats, 1, 1)[:, :extra] if repeats > 1 else pooled[:, :extra]
        else:  # global_average
            fill = pooled.mean(dim=1, keepdim=True).expand(-1, extra, -1, -1)
        return torch.cat([pooled, fill], dim=1)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}, kind={self.kind!r}"
