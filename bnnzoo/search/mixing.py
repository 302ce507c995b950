"""Architecture parameters and their mixing weights, with the eps_A perturbation.

Mixing weights are ``softmax(alpha)`` per choice point. During the weight step the bimodal
perturbation replaces them by ``renorm(clip(softmax(alpha) + U(-eps_A, eps_A), 0, 1))``, the
SDARTS-RS scheme (Chen & Hsieh, ICML 2020); the architecture step always sees the clean weights.
"""

from __future__ import annotations

import torch
from torch import nn


class ArchParameters(nn.Module):
    """One row of logits per choice point (a layer or a cell edge), ``choices`` columns each."""

    def __init__(self, points: int, choices: int, allowed: torch.Tensor | None = None) -> None:
        super().__init__()
        self.alpha = nn.Parameter(1e-3 * torch.randn(points, choices))
        mask = torch.ones(points, choices, dtype=torch.bool) if allowed is None else allowed.bool()
        self.register_buffer("allowed", mask, persistent=False)
        self.eps_a = 0.0
        self.generator: torch.Generator | None = None

    def weights(self) -> torch.Tensor:
        """The mixing weights: softmax(alpha) over the allowed choices, perturbed while ``eps_a > 0``."""
        weights = torch.softmax(self.alpha.masked_fill(~self.allowed, float("-inf")), dim=-1)
        if self.eps_a <= 0:
            return weights
        noise = torch.rand(weights.shape, generator=self.generator).to(weights.device)
        noisy = (weights.detach() + (2 * noise - 1) * self.eps_a).clamp(0, 1) * self.allowed
        noisy = noisy / noisy.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        # The weight step does not update alpha, so the perturbed weights carry no gradient to it.
        return noisy

    def entropy(self) -> float:
        """Mean entropy of the mixing distributions (nats): low means the search has decided."""
        probs = torch.softmax(self.alpha.detach().masked_fill(~self.allowed, float("-inf")), dim=-1)
        return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())
