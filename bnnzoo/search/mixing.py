"""Architecture parameters and their mixing weights, with the eps_A perturbation.

Mixing weights are ``softmax(alpha / T)`` per choice point, T the search's temperature (1 unless
annealed, docs/search.md). During the weight step the bimodal
perturbation replaces them by ``renorm(clip(softmax(alpha) + U(-eps_A, eps_A), 0, 1))``, the
SDARTS-RS scheme (Chen & Hsieh, ICML 2020); the architecture step always sees the clean weights.
"""

from __future__ import annotations

import torch
from torch import nn


class ArchParameters(nn.Module):
    """One row of logits per choice point (a layer or a cell edge), ``choices`` columns each."""

    def __init__(
        self,
        points: int,
        choices: int,
        allowed: torch.Tensor | None = None,
        label: str = "alpha",
        point_names: list[str] | None = None,
        choice_names: list[str] | None = None,
    ) -> None:
        super().__init__()
        self.label = label
        self.point_names = point_names or [f"{label} {index}" for index in range(points)]
        self.choice_names = choice_names or [str(index) for index in range(choices)]
        self.alpha = nn.Parameter(1e-3 * torch.randn(points, choices))
        mask = torch.ones(points, choices, dtype=torch.bool) if allowed is None else allowed.bool()
        self.register_buffer("allowed", mask, persistent=False)
        self.eps_a = 0.0
        self.temperature = 1.0
        self.generator: torch.Generator | None = None

    def clean_weights(self) -> torch.Tensor:
        """softmax(alpha / T) over the allowed choices, never perturbed."""
        return torch.softmax(self.alpha.masked_fill(~self.allowed, float("-inf")) / self.temperature, dim=-1)

    def weights(self) -> torch.Tensor:
        """The mixing weights: :meth:`clean_weights`, perturbed while ``eps_a > 0``."""
        weights = self.clean_weights()
        if self.eps_a <= 0:
            return weights
        noise = torch.rand(weights.shape, generator=self.generator).to(weights.device)
        noisy = (weights.detach() + (2 * noise - 1) * self.eps_a).clamp(0, 1) * self.allowed
        noisy = noisy / noisy.sum(dim=-1, keepdim=True).clamp_min(1e-12)
        # The weight step does not update alpha, so the perturbed weights carry no gradient to it.
        return noisy

    def entropy(self) -> float:
        """Mean entropy of the mixing distributions (nats): low means the search has decided."""
        probs = self.clean_weights().detach()
        return float(-(probs * probs.clamp_min(1e-12).log()).sum(-1).mean())

    def normalized_entropy(self) -> float:
        """Mean entropy of the mixing distributions over ln(number of allowed choices): 1.0 is uniform."""
        probs = self.clean_weights().detach()
        entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1)
        choices = self.allowed.sum(-1).clamp_min(2).to(entropy.dtype)
        return float((entropy / choices.log()).mean())
