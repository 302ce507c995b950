"""The building blocks of a training step: parameter groups, Adam, the lr schedule and the loss.

:func:`parameter_groups` decides where weight decay applies (``nn.Conv2d`` weights only),
:func:`make_optimizer` builds Adam over those groups, :func:`lr_factor` and
:func:`make_scheduler` give the linear or cosine decay to 0, :func:`distillation_loss` is the
knowledge-distillation term and :func:`train_step` runs one optimizer step on a batch (with
optional KD and AMP). See :mod:`bnnzoo.train.recipe` for the recipe's decisions.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bnnzoo.train.config import SCHEDULES, TrainingError

__all__ = [
    "distillation_loss",
    "lr_factor",
    "make_optimizer",
    "make_scheduler",
    "parameter_groups",
    "train_step",
]


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Adam parameter groups: ``nn.Conv2d`` weights with ``weight_decay``, everything else without."""
    decay_ids = {id(m.weight) for m in model.modules() if isinstance(m, nn.Conv2d)}
    decay, no_decay = [], []
    seen: set[int] = set()
    for parameter in model.parameters():
        if not parameter.requires_grad or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        (decay if id(parameter) in decay_ids else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def make_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam over :func:`parameter_groups`."""
    return torch.optim.Adam(parameter_groups(model, weight_decay), lr=lr, betas=(0.9, 0.999))


def lr_factor(schedule: str, step: int, total_steps: int) -> float:
    """The multiplier of the base lr after ``step`` of ``total_steps`` steps: 1 at 0, 0 at the end."""
    progress = min(step, total_steps) / max(total_steps, 1)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    raise TrainingError(f"unknown schedule {schedule!r} (choose from {', '.join(SCHEDULES)})")


def make_scheduler(
    optimizer: torch.optim.Optimizer, schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    lr_factor(schedule, 0, total_steps)  # validates the name
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, step, total_steps))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch."""
    t = float(temperature)
    return (
        F.kl_div(
            F.log_softmax(student_logits.float() / t, dim=1),
            F.log_softmax(teacher_logits.float() / t, dim=1),
            reduction="batchmean",
            log_target=True,
        )
        * t
        * t
    )


def train_step(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    *,
    teacher: nn.Module | None = None,
    kd_alpha: float = 0.9,
    kd_temperature: float = 1.0,
    scaler: torch.amp.GradScaler | None = None,
    amp_dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step on a batch; returns the (detached) loss and the number of correct top-1s."""
    device_type = images.device.type
    with torch.autocast(device_type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
        logits = model(images)
        loss = F.cross_entropy(logits.float(), labels)
        if teacher is not None:
            with torch.no_grad():
                teacher_logits = teacher(images)
            kd = distillation_loss(logits, teacher_logits, kd_temperature)
            loss = (1.0 - kd_alpha) * loss + kd_alpha * kd
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    correct = (logits.detach().argmax(dim=1) == labels).sum()
    return loss.detach(), correct
