"""The bimodal parameter perturbation of the weight step.

The main paper is not available, so the exact distributions are our choice (docs/search.md):

- **eps_A (architecture):** the weight step mixes with
  ``renorm(clip(softmax(alpha) + U(-eps_A, eps_A), 0, 1))``, fresh noise every step (SDARTS-RS).
- **eps_W (weights):** every latent real-valued weight W of a binary convolution gets
  ``delta = eps_W * s * U(-1, 1)``, where ``s`` is the mean |W| of its output channel (the
  scale that binarization multiplies by), so the noise is "in proportion to their scale" and
  flips the signs of the weights nearest zero. The forward and backward of the weight step run at
  W + delta; the clean weights are restored (bit for bit, from a copy) before the optimizer step,
  so the update is applied to the clean weights (a random-smoothing step, like SDARTS-RS on the architecture side).

Noise is drawn from the search's own ``torch.Generator``, so runs are reproducible and resumable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn

from bnnzoo.build.binary import weight_scale
from bnnzoo.search.mixing import ArchParameters


@contextlib.contextmanager
def perturbed(
    arch: Sequence[ArchParameters],
    binary_weights: Sequence[nn.Parameter],
    eps_a: float,
    eps_w: float,
    generator: torch.Generator,
) -> Iterator[None]:
    """Within the block, the mixing weights and binary latent weights are perturbed.

    Leave the block after ``backward()`` and before ``optimizer.step()``: the weights are restored
    bit for bit, and their gradients are those taken at the perturbed point.
    """
    clean: list[torch.Tensor] = []
    for module in arch:
        module.eps_a, module.generator = eps_a, generator
    try:
        if eps_w > 0:
            with torch.no_grad():
                for weight in binary_weights:
                    scale = weight_scale(weight)
                    noise = torch.rand(weight.shape, generator=generator).to(weight.device)
                    clean.append(weight.detach().clone())
                    weight.add_(eps_w * scale * (2 * noise - 1))
        yield
    finally:
        for module in arch:
            module.eps_a, module.generator = 0.0, None
        with torch.no_grad():
            for weight, saved in zip(binary_weights, clean):
                weight.copy_(saved)
