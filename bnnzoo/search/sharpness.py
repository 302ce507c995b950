"""Sharpness of the search's validation loss along alpha and along the binary latent weights.

Measured at the end of an epoch when ``SearchConfig.sharpness`` is set (``bnnzoo search --sharpness``),
on a fixed validation subset (the first ``sharpness_images`` images of the search's validation half, in
batches of the search's batch size) so that epochs compare; docs/search.md, "Sharpness".

- **Along alpha**: the dominant eigenvalue (largest in magnitude, with its sign) of the Hessian of the
  validation loss with respect to the architecture parameters, by power iteration on Hessian-vector
  products (double backward), as RobustDARTS (Zela et al., ICLR 2020) and SDARTS track it. Alpha is
  small (a few hundred entries), so a few iterations suffice; the first backward's graph is kept and
  each iteration costs one more backward. The mixing weights are ``softmax(alpha / T)``, so this
  Hessian carries a factor ``1 / T^2``; ``T^2 * lambda`` (the Hessian along the logits ``alpha / T``)
  is logged beside it, so that runs with different temperature schedules compare.
- **Along the weights**: through sign() the loss is piecewise constant in the latent weights, so their
  Hessian is zero almost everywhere. We measure the rise in validation loss when every binary latent
  weight tensor moves by a random direction of relative radius ``rho``: per output channel, the
  perturbation has norm ``rho * ||W_c||`` (filter-normalised, Li et al. 2018), averaged over
  ``sharpness_draws`` draws. Random directions rather than one SAM ascent step, because the gradient
  that SAM would follow is the straight-through estimator's surrogate, not the gradient of the
  measured loss, which is zero wherever it exists; a zeroth-order rise needs no gradient, is zero at
  ``rho = 0`` exactly, and matches the scale-relative geometry of the eps_W noise (perturb.py).

Nothing of the search changes: BatchNorm runs in training mode as in the architecture step, with its
running statistics restored afterwards; gradients are taken with ``torch.autograd.grad`` (no ``.grad``
is touched); perturbed weights are restored bit for bit; the random vectors come from a generator of
their own, reseeded every epoch (the same start vector and directions at every epoch). A search with
sharpness on ends with exactly the alphas of one without.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

POWER_ITERATIONS = 20
POWER_TOLERANCE = 1e-2  # stop when the eigenvalue estimate changes by less than this, relative (1 %)
SEED_OFFSET = 7919  # the sharpness generator's seed is the search seed plus this

Batches = list[tuple[torch.Tensor, torch.Tensor]]


def fixed_batches(dataset: Dataset[Any], images: int, batch_size: int, device: torch.device) -> Batches:
    """The first ``images`` items of ``dataset`` (all if fewer), in order, as batches of ``batch_size``."""
    count = min(images, len(dataset))  # type: ignore[arg-type]
    batches = []
    for start in range(0, count, batch_size):
        items = [dataset[index] for index in range(start, min(start + batch_size, count))]
        x = torch.stack([image for image, _ in items]).to(device)
        y = torch.tensor([label for _, label in items], device=device)
        batches.append((x, y))
    return batches


@contextlib.contextmanager
def kept_buffers(model: nn.Module) -> Iterator[None]:
    """Within the block the model may update its buffers (BatchNorm statistics); they are restored after."""
    saved = [(buffer, buffer.detach().clone()) for buffer in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


@contextlib.contextmanager
def only_these_require_grad(model: nn.Module, params: Sequence[torch.Tensor]) -> Iterator[None]:
    """Within the block only ``params`` require grad, so the graph holds only their paths (faster)."""
    keep = {id(p) for p in params}
    frozen = [p for p in model.parameters() if p.requires_grad and id(p) not in keep]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def validation_loss(model: nn.Module, batches: Batches) -> torch.Tensor:
    """The mean cross-entropy over all images of ``batches``."""
    total = sum(len(y) for _, y in batches)
    return sum(F.cross_entropy(model(x), y, reduction="sum") for x, y in batches) / total


def _unit(vectors: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    norm = math.sqrt(sum(float(v.pow(2).sum()) for v in vectors))
    return [v / norm for v in vectors] if norm > 0 else list(vectors)


def alpha_eigenvalue(
    model: nn.Module,
    params: Sequence[torch.Tensor],
    batches: Batches,
    generator: torch.Generator,
    iterations: int = POWER_ITERATIONS,
    tolerance: float = POWER_TOLERANCE,
) -> tuple[float, int]:
    """The dominant eigenvalue of the Hessian of :func:`validation_loss` w.r.t. ``params``, and the
    number of power iterations taken (fewer than ``iterations`` when it converged to ``tolerance``)."""
    with kept_buffers(model), only_these_require_grad(model, params):
        loss = validation_loss(model, batches)
        grads = torch.autograd.grad(loss, params, create_graph=True)
        vector = _unit([torch.randn(p.shape, generator=generator).to(p.device) for p in params])
        eigenvalue = 0.0
        for step in range(1, iterations + 1):
            product = torch.autograd.grad(grads, params, grad_outputs=vector, retain_graph=True)
            estimate = sum(float((h * v).sum()) for h, v in zip(product, vector))  # Rayleigh quotient, |v| = 1
            converged = step > 1 and abs(estimate - eigenvalue) <= tolerance * abs(estimate)
            eigenvalue = estimate
            if converged or all(float(h.abs().max()) == 0 for h in product):
                break
            vector = _unit([h.detach() for h in product])
    return eigenvalue, step


def _channel_norms(tensor: torch.Tensor) -> torch.Tensor:
    """The norm of each output channel (first dimension), shaped to broadcast against ``tensor``."""
    norms = torch.linalg.vector_norm(tensor.reshape(len(tensor), -1), dim=1)
    return norms.view(-1, *([1] * (tensor.dim() - 1)))


@torch.no_grad()
def weight_sharpness(
    model: nn.Module,
    weights: Sequence[torch.Tensor],
    batches: Batches,
    rho: float,
    draws: int,
    generator: torch.Generator,
) -> tuple[float, float]:
    """The clean validation loss and its mean rise over ``draws`` random perturbations of relative radius ``rho``.

    Each output channel ``W_c`` of each tensor in ``weights`` moves by ``rho * ||W_c|| * d_c / ||d_c||``,
    ``d`` Gaussian; the weights are restored bit for bit.
    """
    saved = [weight.detach().clone() for weight in weights]
    with kept_buffers(model):
        clean = float(validation_loss(model, batches))
        rises = []
        try:
            for _ in range(draws):
                for weight, original in zip(weights, saved):
                    direction = torch.randn(weight.shape, generator=generator).to(weight.device)
                    scale = _channel_norms(original) / _channel_norms(direction).clamp_min(1e-12)
                    weight.copy_(original + rho * scale * direction)
                rises.append(float(validation_loss(model, batches)) - clean)
        finally:
            for weight, original in zip(weights, saved):
                weight.copy_(original)
    return clean, sum(rises) / len(rises)


def measure_sharpness(
    model: nn.Module,
    arch: Sequence[nn.Module],
    binary_weights: Sequence[torch.Tensor],
    val_set: Dataset[Any],
    config: Any,
    device: torch.device,
) -> dict[str, float]:
    """The ``sharpness_*`` fields of one ``search_log.jsonl`` row (``config`` is the search's SearchConfig)."""
    started = time.perf_counter()
    batches = fixed_batches(val_set, config.sharpness_images, config.batch_size, device)
    generator = torch.Generator().manual_seed(config.seed + SEED_OFFSET)
    params = [module.alpha for module in arch]
    eigenvalue, iterations = alpha_eigenvalue(model, params, batches, generator)
    clean, rise = weight_sharpness(
        model, binary_weights, batches, config.sharpness_rho, config.sharpness_draws, generator
    )
    temperature = float(arch[0].temperature)
    return {
        "sharpness_alpha": eigenvalue,
        "sharpness_logits": eigenvalue * temperature**2,
        "sharpness_alpha_iterations": iterations,
        "sharpness_weights": rise,
        "sharpness_val_loss": clean,
        "sharpness_images": sum(len(y) for _, y in batches),
        "sharpness_seconds": time.perf_counter() - started,
    }
