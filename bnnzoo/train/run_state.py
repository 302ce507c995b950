"""A training run's state on disk: its output folder, the checkpoint's resume checks, RNG states.

:class:`RunFiles` names the files of ``output_dir`` (the checkpoint pair, ``metrics.jsonl``,
``final.*``), refuses a folder that holds another run, clears what a killed run left and reads a
checkpoint back for ``--resume``, checked against the genotype and the recipe fields. The
checkpoint itself is written by the run (:mod:`bnnzoo.train.recipe`) with
:func:`bnnzoo._checkpoint.save_checkpoint`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnzoo._atomic import atomic_write_text
from bnnzoo._checkpoint import load_checkpoint, remove_checkpoint, remove_leftovers
from bnnzoo.errors import WeightsError
from bnnzoo.train.config import (
    CHECKPOINT_NAME,
    FINAL_INFO_NAME,
    FINAL_WEIGHTS_NAME,
    METRICS_NAME,
    RECIPE_FIELDS,
    RUN_FORMAT,
    TrainConfig,
    TrainingError,
)
from bnnzoo.trained import canonical_text, genotype_name, load_state_checked

RUN_FILES = (METRICS_NAME, FINAL_INFO_NAME, FINAL_WEIGHTS_NAME)  # what a run writes besides its checkpoint


@dataclass
class EpochProgress:
    """How far the current epoch got: batches done, (loss * n, correct, n) sums and seconds."""

    batches: int = 0
    sums: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    seconds: float = 0.0

    @classmethod
    def of_checkpoint(cls, state: dict[str, Any] | None, is_main: bool) -> EpochProgress:
        """The progress a checkpoint saved mid-epoch; a fresh epoch's for one saved at an epoch's end."""
        if state is None or not state.get("batches_done"):
            return cls()
        # The saved sums are over all processes: the main process carries them on.
        sums = [float(v) for v in state["epoch_sums"]] if is_main else [0.0, 0.0, 0.0]
        return cls(int(state["batches_done"]), sums, float(state.get("epoch_seconds", 0.0)))


@dataclass(frozen=True)
class RunFiles:
    """The files of a run in ``output_dir``."""

    output_dir: Path

    @property
    def checkpoint_base(self) -> Path:
        return self.output_dir / CHECKPOINT_NAME

    @property
    def checkpoint(self) -> Path:
        return self.checkpoint_base.with_suffix(".json")

    @property
    def metrics(self) -> Path:
        return self.output_dir / METRICS_NAME

    @property
    def final_weights(self) -> Path:
        return self.output_dir / FINAL_WEIGHTS_NAME

    @property
    def final_info(self) -> Path:
        return self.output_dir / FINAL_INFO_NAME

    def check(self, resume: bool, overwrite: bool) -> None:
        """Resuming needs a checkpoint; a fresh start refuses a folder holding a run unless ``overwrite``."""
        existing = [path for path in (self.checkpoint, self.metrics, self.final_info) if path.exists()]
        if resume:
            if not self.checkpoint.is_file():
                raise TrainingError(
                    f"cannot resume: {self.output_dir} has no checkpoint ({CHECKPOINT_NAME}.json); "
                    "start without --resume, or pass the output folder of the run to continue with -o"
                )
        elif existing and not overwrite:
            raise TrainingError(
                f"{self.output_dir} already holds a run ({existing[0].name}); pass --resume to continue it, "
                "--overwrite to start again, or another output folder"
            )

    def prepare(self, overwrite: bool, history: list[dict[str, Any]]) -> None:
        """Create the folder, remove an overwritten run and a killed run's leftovers, and rewrite
        ``metrics.jsonl`` from ``history`` (the checkpoint's), so no line is lost or duplicated."""
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            remove_checkpoint(self.checkpoint_base)
            for name in RUN_FILES:
                with contextlib.suppress(FileNotFoundError):
                    (self.output_dir / name).unlink()
        remove_leftovers(self.checkpoint_base, others=RUN_FILES)  # temporary files, unnamed tensors
        atomic_write_text(self.metrics, "".join(json.dumps(record) + "\n" for record in history))

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one epoch's line to ``metrics.jsonl``, flushed to disk."""
        with open(self.metrics, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def load_resume_state(
        self, config: TrainConfig, genotype_text: str, model: nn.Module, world_size: int
    ) -> dict[str, Any]:
        """The checkpoint to resume from, its model state loaded into ``model``; refused if it is
        of another genotype or its recipe fields differ from ``config``'s."""
        state = load_checkpoint(self.checkpoint_base)
        if not isinstance(state, dict) or state.get("format") != RUN_FORMAT:
            raise WeightsError(f"{self.checkpoint_base}.json: not a bnnzoo training checkpoint")
        saved_text = state.get("genotype", "")
        if canonical_text(saved_text) != genotype_text:
            raise WeightsError(
                f"{self.checkpoint_base}.json: the checkpoint is of genotype '{genotype_name(saved_text)}', "
                f"which differs from {config.model!r} ('{model.genotype.name}'); "
                "resume with the model it was trained with, or use another output folder"
            )
        saved = state.get("config", {})
        current = dataclasses.asdict(config)
        different = [
            f"{name}: checkpoint {saved.get(name)!r}, now {current[name]!r}"
            for name in RECIPE_FIELDS
            if saved.get(name) != current[name]
        ]
        if different:
            raise TrainingError(
                f"cannot resume {self.output_dir}: the recipe differs from the checkpoint's ({'; '.join(different)}); "
                "pass the same settings as the interrupted run"
            )
        if state.get("world_size", 1) != world_size:
            warnings.warn(
                f"resuming a {state.get('world_size')}-process run with {world_size} processes: "
                "the data order differs from an uninterrupted run",
                stacklevel=2,
            )
        load_state_checked(model, state["model"], f"{self.checkpoint_base}.json")
        return state


def restore_optimizer(
    state: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler | None,
) -> None:
    """Load a checkpoint's optimizer, scheduler and GradScaler states."""
    optimizer_state = dict(state["optimizer"])
    # JSON turned the integer parameter ids into strings.
    optimizer_state["state"] = {int(k): v for k, v in optimizer_state["state"].items()}
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])


def rng_state(device: torch.device) -> dict[str, Any]:
    """The RNG states a checkpoint saves: torch's CPU (and CUDA) generator and Python's ``random``."""
    rng: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def restore_rng(rng: dict[str, Any]) -> None:
    """Set the RNG states :func:`rng_state` saved (as a checkpoint reads them back)."""
    if "torch" in rng:
        torch.set_rng_state(rng["torch"].to(torch.uint8))
    if "python" in rng:
        random.setstate(_as_tuple(rng["python"]))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"].to(torch.uint8))


def sums_tensor(sums: list[float] | torch.Tensor, device: torch.device) -> torch.Tensor:
    """An epoch's (loss * n, correct, n) sums as a float64 tensor on ``device`` (a copy)."""
    if isinstance(sums, torch.Tensor):
        return sums.detach().to(device=device, dtype=torch.float64).clone()
    return torch.tensor(sums, dtype=torch.float64, device=device)


def _as_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuple(v) for v in value)
    return value
