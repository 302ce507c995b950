"""The exact-scale binary convolution that packed weights load into.

A packed latent weight comes back as ``sign * scale``; a float32 ``mean|W|`` of ``n`` copies of
``scale`` is not always ``scale`` again (the sum rounds). :func:`exact_weight_scale` takes the mean
exactly where a channel's magnitudes are all equal, so :class:`PackedBinaryConv2d` reproduces the
exported model's outputs bit for bit.
"""

from __future__ import annotations

from typing import Any

import torch

from bnnzoo.build.binary import BinaryConv2d, SignWeightSTE, sign


def exact_weight_scale(w: torch.Tensor) -> torch.Tensor:
    """``mean|W|`` per output channel, taken exactly (as ``max|W|``) where a channel's ``|W|`` are all equal."""
    if w.dim() == 1:
        return w.abs()
    dims = tuple(range(1, w.dim()))
    magnitude = w.abs()
    peak = magnitude.amax(dim=dims, keepdim=True)
    uniform = magnitude.amin(dim=dims, keepdim=True) == peak
    return torch.where(uniform, peak, magnitude.mean(dim=dims, keepdim=True))


class _ExactSignWeightSTE(SignWeightSTE):
    """:class:`SignWeightSTE` with :func:`exact_weight_scale` in the forward pass (same backward)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return sign(w) * exact_weight_scale(w)


class PackedBinaryConv2d(BinaryConv2d):
    """A :class:`BinaryConv2d` restored from packed bits.

    Identical to BinaryConv2d (same parameters, state dict and gradients), except that the
    per-channel scale is :func:`exact_weight_scale`: a channel whose latent weights all have the same
    magnitude (as restored: ``sign * scale``) is scaled by exactly that magnitude, where a float32 mean
    could be one ulp off. Once training makes the magnitudes differ, it is the ordinary ``mean|W|``.
    """

    def binarized_weight(self) -> torch.Tensor:
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return _ExactSignWeightSTE.apply(w)
        return sign(w) * exact_weight_scale(w)
