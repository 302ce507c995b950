"""The binary pieces a supernet needs beyond the final network's layers."""

from __future__ import annotations

import torch

from bnnzoo.build.binary import sign


def sign_ste(w: torch.Tensor) -> torch.Tensor:
    """sign(w) with the clipped straight-through gradient 1[|w| <= 1] (no scale)."""
    clipped = w.clamp(-1, 1)
    return clipped + (sign(w) - clipped).detach()
