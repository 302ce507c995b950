"""Reading trained weights back: a run's checkpoint, its ``final.safetensors`` or a plain weights file.

:func:`load_trained_weights` reads a model state dict (and what is known about it: genotype,
binary mode, image size, dataset) from a training checkpoint, a run's final weights with their
``final.json``, a plain safetensors file or a run folder, into a :class:`TrainedWeights`;
:func:`apply_weights` loads one into a model after checking the genotype, and sets its binary
mode. Bad files raise :class:`~bnnzoo.errors.WeightsError`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnzoo import dsl
from bnnzoo._checkpoint import FORMAT as CHECKPOINT_FILE_FORMAT
from bnnzoo._checkpoint import load_checkpoint, load_safetensors
from bnnzoo.build.binary import set_binary_weights
from bnnzoo.errors import BnnzooError, WeightsError
from bnnzoo.train.config import CHECKPOINT_NAME, FINAL_FORMAT, FINAL_WEIGHTS_NAME, RUN_FORMAT

__all__ = ["TrainedWeights", "apply_weights", "load_trained_weights"]


@dataclass
class TrainedWeights:
    """A model state dict read from a run's files, with what is known about it."""

    state_dict: dict[str, torch.Tensor]
    source: Path
    kind: str  # "checkpoint", "final" or "weights"
    genotype: str | None = None
    binary_weights: bool = True
    image_size: int | None = None
    dataset: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def load_trained_weights(path: str | os.PathLike[str]) -> TrainedWeights:
    """Read weights from a training checkpoint (stem, ``.json`` or ``.safetensors``), a run's
    ``final.safetensors`` (with its ``final.json`` when present), a plain safetensors weights file,
    or a run folder (its ``final.safetensors``, else its checkpoint). Bad files raise WeightsError."""
    source = Path(path).expanduser()
    if source.is_dir():
        final = source / FINAL_WEIGHTS_NAME
        source = final if final.is_file() else source / f"{CHECKPOINT_NAME}.json"
    meta = _sibling_json(source)
    if meta is not None and meta.get("format") == CHECKPOINT_FILE_FORMAT:
        state = load_checkpoint(source)
        if not isinstance(state, dict) or state.get("format") != RUN_FORMAT or "model" not in state:
            raise WeightsError(f"{source}: a checkpoint, but not of a bnnzoo training run")
        config = state.get("config", {})
        two_step_phase1 = state.get("phase") == 1 and config.get("two_step", True)
        return TrainedWeights(
            state["model"],
            source,
            "checkpoint",
            genotype=state.get("genotype"),
            binary_weights=not two_step_phase1,
            image_size=config.get("image_size"),
            dataset=config.get("dataset"),
            info={"epoch": state.get("epoch"), "phase": state.get("phase"), "complete": state.get("complete")},
        )
    if source.suffix == ".json":
        if meta is None:
            raise WeightsError(f"{source}: no such checkpoint")
        if meta.get("format") != FINAL_FORMAT:
            raise WeightsError(f"{source}: neither a bnnzoo training checkpoint nor a final.json")
        source = source.with_suffix(".safetensors")
    elif source.suffix != ".safetensors":
        if not source.exists():
            raise WeightsError(f"{source}: no such checkpoint or weights file")
        raise WeightsError(f"{source}: expected a .safetensors weights file or a checkpoint (.json)")
    state_dict = load_safetensors(source)
    if meta is not None and meta.get("format") == FINAL_FORMAT:
        return TrainedWeights(
            state_dict,
            source,
            "final",
            genotype=meta.get("genotype"),
            binary_weights=bool(meta.get("binary_weights", True)),
            image_size=meta.get("image_size"),
            dataset=meta.get("dataset"),
            info=meta,
        )
    return TrainedWeights(state_dict, source, "weights")


def _sibling_json(path: Path) -> dict[str, Any] | None:
    json_file = path if path.suffix == ".json" else path.with_suffix(".json")
    if path.suffix not in ("", ".json", ".safetensors"):
        return None
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if path.suffix == ".safetensors":
            return None
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint or final.json ({exc})") from None
    return meta if isinstance(meta, dict) else None


def apply_weights(model: nn.Module, weights: TrainedWeights) -> nn.Module:
    """Load ``weights`` into ``model`` (strictly) and set its binary mode; check the genotype first."""
    genotype = getattr(model, "genotype", None)
    if weights.genotype is not None and genotype is not None:
        model_text = dsl.to_text(genotype)
        if canonical_text(weights.genotype) != model_text:
            raise WeightsError(
                f"{weights.source}: trained for genotype '{genotype_name(weights.genotype)}', "
                f"which differs from the model's genotype '{genotype.name}'"
            )
    try:
        model.load_state_dict(weights.state_dict, strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())
        raise WeightsError(f"{weights.source}: the weights do not fit the model: {detail[:600]}") from None
    set_binary_weights(model, weights.binary_weights)
    return model


def canonical_text(genotype_text: str) -> str:
    try:
        return dsl.to_text(dsl.parse(genotype_text, "<checkpoint genotype>"))
    except BnnzooError:
        return genotype_text


def genotype_name(genotype_text: str) -> str:
    for line in genotype_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "name":
            return words[1]
    return "?"
