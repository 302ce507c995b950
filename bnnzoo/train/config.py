"""The configuration and outcome of a training run, and the constants they share.

:class:`TrainConfig` holds everything a run of :func:`bnnzoo.train.recipe.train` needs and checks
it (:meth:`TrainConfig.validate`); :class:`TrainResult` is what a run returns;
:class:`TrainingError` and :class:`TrainingInterrupted` are how a run fails or stops. The
constants here (schedules, AMP dtypes, :data:`RECIPE_FIELDS`, the names and formats of a run's
files) are shared by :mod:`bnnzoo.train.optim`, :mod:`bnnzoo.train.weights` and
:mod:`bnnzoo.train.recipe`. See :mod:`bnnzoo.train.recipe` for the recipe's decisions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnzoo.errors import BnnzooError
from bnnzoo.trained import CHECKPOINT_NAME, FINAL_FORMAT, FINAL_WEIGHTS_NAME, RUN_FORMAT

__all__ = [
    "AMP_DTYPES",
    "CHECKPOINT_NAME",
    "FINAL_FORMAT",
    "FINAL_INFO_NAME",
    "FINAL_WEIGHTS_NAME",
    "METRICS_NAME",
    "PHASE_NAMES",
    "RECIPE_FIELDS",
    "RUN_FORMAT",
    "SCHEDULES",
    "TrainConfig",
    "TrainResult",
    "TrainingError",
    "TrainingInterrupted",
]

SCHEDULES = ("linear", "cosine")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
METRICS_NAME = "metrics.jsonl"
FINAL_INFO_NAME = "final.json"
PHASE_NAMES = {1: "binary activations, real weights", 2: "fully binary"}

# Fields that define the run: a resumed run must use the same values.
RECIPE_FIELDS = (
    "dataset",
    "image_size",
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "two_step",
    "step1_fraction",
    "weight_decay",
    "weight_decay_step2",
    "augment",
    "teacher",
    "teacher_weights",
    "kd_alpha",
    "kd_temperature",
    "seed",
    "max_steps_per_epoch",
    "train_limit",
    "amp",
    "amp_dtype",
)


class TrainingError(BnnzooError):
    """A training run cannot be configured, started or resumed."""


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped on Ctrl-C after saving a checkpoint; ``str()`` says how to resume."""

    def __init__(self, message: str, checkpoint: Path | None, *, is_main: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.checkpoint = checkpoint
        self.is_main = is_main

    def __str__(self) -> str:
        return self.message


@dataclass
class TrainConfig:
    """Everything a training run needs; see the module docstring for the recipe's decisions."""

    model: str
    dataset: str = "fashion_mnist"
    data_root: str | None = None
    image_size: int | None = None  # default: the genotype's input size
    epochs: int = 10  # total over both steps
    batch_size: int = 128  # per process
    lr: float = 1e-3
    schedule: str = "linear"
    two_step: bool = True
    step1_fraction: float = 0.5
    weight_decay: float = 1e-5  # step 1 (real weights)
    weight_decay_step2: float = 0.0  # step 2 (binary weights), and one-step runs
    augment: bool = True
    teacher: str | None = None
    teacher_weights: str | None = None
    kd_alpha: float = 0.9
    kd_temperature: float = 1.0
    seed: int = 0
    device: str = "cpu"
    amp: bool = False  # CUDA only
    amp_dtype: str = "bf16"
    max_steps_per_epoch: int | None = None
    train_limit: int | None = None
    test_limit: int | None = None
    output_dir: str | None = None  # default: runs/<genotype name>-<dataset>
    num_workers: int = 0
    resume: bool = False
    overwrite: bool = False
    progress: bool | None = None  # None: a progress bar when stderr is a terminal

    def __post_init__(self) -> None:
        self.model = os.fspath(self.model)
        for name in ("data_root", "teacher", "teacher_weights", "output_dir"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, os.fspath(value))

    def validate(self) -> None:
        """Raise :class:`TrainingError` for values no run can use."""
        problems = []
        if self.epochs < 1:
            problems.append(f"epochs must be at least 1, got {self.epochs}")
        elif self.two_step and self.epochs < 2:
            problems.append("two-step training needs at least 2 epochs (one per step); pass --no-two-step")
        if self.batch_size < 1:
            problems.append(f"batch size must be at least 1, got {self.batch_size}")
        if not self.lr > 0 or not math.isfinite(self.lr):
            problems.append(f"learning rate must be positive, got {self.lr}")
        if self.schedule not in SCHEDULES:
            problems.append(f"unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")
        if not 0.0 < self.step1_fraction < 1.0:
            problems.append(f"step1_fraction must lie strictly between 0 and 1, got {self.step1_fraction}")
        if self.weight_decay < 0 or self.weight_decay_step2 < 0:
            problems.append("weight decay must be zero or more")
        if not 0.0 <= self.kd_alpha <= 1.0:
            problems.append(f"kd_alpha must lie in [0, 1], got {self.kd_alpha}")
        if not self.kd_temperature > 0:
            problems.append(f"kd_temperature must be positive, got {self.kd_temperature}")
        if self.teacher_weights is not None and self.teacher is None:
            problems.append("teacher_weights needs a teacher model name")
        if self.amp_dtype not in AMP_DTYPES:
            problems.append(f"unknown amp dtype {self.amp_dtype!r} (choose from {', '.join(AMP_DTYPES)})")
        if self.device != "cpu" and not self.device.startswith("cuda"):
            problems.append(f"unknown device {self.device!r} (choose cpu or cuda)")
        elif self.amp and self.device == "cpu":
            problems.append("mixed precision (amp) runs on CUDA only; drop --amp or pass --device cuda")
        for name in ("max_steps_per_epoch",):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, got {value}")
        for name in ("train_limit", "test_limit", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                problems.append(f"{name} must be at least 1, got {value}")
        if self.num_workers < 0:
            problems.append(f"num_workers must be zero or more, got {self.num_workers}")
        if self.resume and self.overwrite:
            problems.append("resume and overwrite exclude each other")
        if problems:
            raise TrainingError("; ".join(problems))

    @property
    def step1_epochs(self) -> int:
        """Epochs of step 1 (0 without two-step training)."""
        if not self.two_step:
            return 0
        return min(self.epochs - 1, max(1, round(self.epochs * self.step1_fraction)))

    def phases(self) -> list[tuple[int, int, int]]:
        """``(phase, first epoch, number of epochs)`` of each training step, epochs counted from 0."""
        first = self.step1_epochs
        if first == 0:
            return [(2, 0, self.epochs)]
        return [(1, 0, first), (2, first, self.epochs - first)]

    def phase_of_epoch(self, epoch: int) -> int:
        return 1 if epoch < self.step1_epochs else 2


@dataclass
class TrainResult:
    """What :func:`train` produced: file paths, the metrics history and the trained model."""

    output_dir: Path
    checkpoint: Path
    final_weights: Path
    final_info: Path
    metrics: list[dict[str, Any]]
    test_top1: float
    test_top5: float
    test_loss: float
    config: TrainConfig
    model: nn.Module = field(repr=False)
