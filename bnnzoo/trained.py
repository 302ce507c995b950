"""Trained weights: the one reader of a run's files, the writer of final weights, the check against a model.

Used by training (resume-free reads, the teacher), evaluation, the Hub and export. Accepted inputs:

* a safetensors file holding a model state dict (``model.safetensors``, ``weights.safetensors``);
* a training checkpoint (its ``.json``, its ``.safetensors`` or the common stem, dots in the stem
  allowed: ``run/epoch.5``) whose state has ``model`` (the state dict) and optionally ``metrics`` (a
  dict) or ``history`` (a list of per-epoch dicts, the last one counts), ``config`` (the recipe),
  ``genotype`` (its text) and ``phase``;
* a run's ``final.safetensors`` with its ``final.json`` (format ``bnnzoo.final/1``: test metrics,
  dataset, mean/std, image size, recipe);
* a run folder: its ``final.safetensors``, else its ``checkpoint``.

A state dict saved from a wrapped model (``module.`` from DDP, ``_orig_mod.`` from torch.compile,
in either order) loads as the bare model's: timm's ``clean_state_dict`` strips the prefixes. Bad files
raise :class:`~bnnzoo.errors.WeightsError`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from timm.models import clean_state_dict
from torch import nn

from bnnzoo import dsl
from bnnzoo._atomic import atomic_path
from bnnzoo._checkpoint import FORMAT as CHECKPOINT_FILE_FORMAT
from bnnzoo._checkpoint import load_checkpoint, load_safetensors
from bnnzoo.build.binary import set_binary_weights
from bnnzoo.errors import BnnzooError, WeightsError

__all__ = [
    "CHECKPOINT_NAME",
    "FINAL_FORMAT",
    "FINAL_WEIGHTS_NAME",
    "RUN_FORMAT",
    "TrainedWeights",
    "apply_weights",
    "classifier_hint",
    "load_state_checked",
    "load_trained_weights",
    "write_final_weights",
]

RUN_FORMAT = "bnnzoo.train/1"  # a training run's checkpoint state
FINAL_FORMAT = "bnnzoo.final/1"  # a run's final.json (and the metadata of final.safetensors)
CHECKPOINT_NAME = "checkpoint"
FINAL_WEIGHTS_NAME = "final.safetensors"
_FINAL_METRICS = ("test_top1", "test_top5", "test_loss", "test_samples")


@dataclass
class TrainedWeights:
    """A model state dict read from a run's files, with what the files say about it."""

    state_dict: dict[str, torch.Tensor]
    source: Path
    kind: str  # "checkpoint", "final" or "weights"
    genotype: str | None = None  # the genotype text the weights were trained for, when recorded
    binary_weights: bool = True  # False for a checkpoint from step 1 of two-step training
    image_size: int | None = None
    dataset: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # final.json, or a checkpoint's epoch/phase/complete
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the training recipe, as recorded
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def load_trained_weights(path: str | os.PathLike[str]) -> TrainedWeights:
    """Read weights from any of the forms listed in the module docstring."""
    source = Path(path).expanduser()
    if source.is_dir():
        final = source / FINAL_WEIGHTS_NAME
        source = final if final.is_file() else source / f"{CHECKPOINT_NAME}.json"
        if not source.is_file():
            raise WeightsError(
                f"{source.parent}: no such checkpoint: a folder without {FINAL_WEIGHTS_NAME} or {source.name}"
            )
    meta = _sibling_json(source)
    kind = meta.get("format") if meta is not None else None
    if kind == CHECKPOINT_FILE_FORMAT:
        return _from_checkpoint(source)
    if kind == FINAL_FORMAT:
        return _from_final(_with_suffix(source, ".safetensors"), meta)
    if source.suffix == ".json":
        if meta is None:
            raise WeightsError(f"{source}: no such checkpoint")
        raise WeightsError(f"{source}: neither a bnnzoo training checkpoint nor a final.json")
    if source.suffix != ".safetensors":
        if not source.exists():
            raise WeightsError(f"{source}: no such checkpoint or weights file")
        raise WeightsError(f"{source}: expected a .safetensors weights file or a checkpoint (.json)")
    return TrainedWeights(clean_state_dict(load_safetensors(source)), source, "weights")


def _from_checkpoint(source: Path) -> TrainedWeights:
    state = load_checkpoint(source)
    model_state = state.get("model") if isinstance(state, Mapping) else None
    if not isinstance(model_state, Mapping) or not all(isinstance(v, torch.Tensor) for v in model_state.values()):
        keys = ", ".join(sorted(state)) if isinstance(state, Mapping) else type(state).__name__
        raise WeightsError(f"{source}: the checkpoint has no 'model' state dict (it has: {keys})")
    metrics = state.get("metrics")
    if not isinstance(metrics, Mapping):
        history = state.get("history")
        metrics = history[-1] if isinstance(history, list) and history and isinstance(history[-1], Mapping) else {}
    config = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    genotype = state.get("genotype")
    return TrainedWeights(
        clean_state_dict(model_state),
        source,
        "checkpoint",
        genotype=genotype if isinstance(genotype, str) else None,
        binary_weights=not (state.get("phase") == 1 and config.get("two_step", True)),
        image_size=config.get("image_size") if isinstance(config.get("image_size"), int) else None,
        dataset=_dataset_of(config),
        info={"epoch": state.get("epoch"), "phase": state.get("phase"), "complete": state.get("complete")},
        metrics=dict(metrics),
        config=dict(config),
    )


def _from_final(source: Path, meta: dict[str, Any]) -> TrainedWeights:
    recipe = meta.get("recipe")
    return TrainedWeights(
        clean_state_dict(load_safetensors(source)),
        source,
        "final",
        genotype=meta.get("genotype") if isinstance(meta.get("genotype"), str) else None,
        binary_weights=bool(meta.get("binary_weights", True)),
        image_size=meta.get("image_size") if isinstance(meta.get("image_size"), int) else None,
        dataset=meta.get("dataset") if isinstance(meta.get("dataset"), str) else None,
        info=meta,
        metrics={key: meta[key] for key in _FINAL_METRICS if key in meta},
        config=dict(recipe) if isinstance(recipe, Mapping) else {},
        mean=_floats(meta.get("mean")),
        std=_floats(meta.get("std")),
    )


def _with_suffix(path: Path, suffix: str) -> Path:
    """``run/final.json`` -> ``run/final.safetensors``; a stem keeps its dots (``run/epoch.5.json``)."""
    if path.suffix in (".json", ".safetensors"):
        return path.with_suffix(suffix)
    return path.parent / f"{path.name}{suffix}"


def _sibling_json(path: Path) -> dict[str, Any] | None:
    json_file = _with_suffix(path, ".json")
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except (FileNotFoundError, IsADirectoryError):
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        if path.suffix == ".safetensors":
            return None
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint or final.json ({exc})") from None
    return meta if isinstance(meta, dict) else None


def _dataset_of(config: Mapping[str, Any]) -> str | None:
    value = config.get("dataset")
    if isinstance(value, Mapping):
        value = value.get("name")
    if value is None and isinstance(config.get("data"), Mapping):
        value = config["data"].get("dataset", config["data"].get("name"))
    return value if isinstance(value, str) else None


def _floats(value: Any) -> tuple[float, ...] | None:
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
        return tuple(float(v) for v in value)
    return None


def write_final_weights(model: nn.Module, path: str | os.PathLike[str]) -> Path:
    """Write ``model``'s state dict as a run's final weights (safetensors, atomically); returns the path."""
    path = Path(path)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "bnnzoo": FINAL_FORMAT})
    return path


# -- checking against a model --------------------------------------------------------------------


def load_state_checked(model: nn.Module, state: dict[str, torch.Tensor], source: str | os.PathLike[str]) -> None:
    """``model.load_state_dict(state)``, with a :class:`WeightsError` naming the first tensor that does not fit."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_some(missing)}")
        if unexpected:
            parts.append(f"unexpected {_some(unexpected)}")
        raise WeightsError(f"{source}: the weights do not fit the model: {'; '.join(parts)}")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise WeightsError(
                f"{source}: {key} has shape {tuple(value.shape)} in the weights but {tuple(expected[key].shape)} "
                f"in the model{classifier_hint(key, model)}"
            )
    model.load_state_dict(state, strict=True)


def classifier_hint(key: str, model: nn.Module) -> str:
    """A hint for a classifier mismatch: pass ``num_classes=`` (or ``in_chans=`` for the stem)."""
    if key.startswith("fc."):
        return "; the classifier differs: pass num_classes= matching the weights, or reset the classifier"
    if key == "stem.conv.weight":
        return "; the input channels differ: pass in_chans= matching the weights"
    return ""


def _some(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


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
    load_state_checked(model, weights.state_dict, weights.source)
    set_binary_weights(model, weights.binary_weights)
    return model


def canonical_text(genotype_text: str) -> str:
    """The canonical print of a recorded genotype text (the text itself when it does not parse)."""
    try:
        return dsl.to_text(dsl.parse(genotype_text, "<checkpoint genotype>"))
    except BnnzooError:
        return genotype_text


def genotype_name(genotype_text: str) -> str:
    """The ``name`` line of a recorded genotype text, without parsing it."""
    for line in genotype_text.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "name":
            return words[1]
    return "?"
