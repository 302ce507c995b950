"""Trained weights for publishing and export: a state dict file, a training checkpoint or a run's final weights.

Accepted (the conventions of :mod:`bnnzoo._checkpoint` and of bnnzoo's training runs):

* a safetensors file holding a model state dict (``model.safetensors``, ``weights.safetensors``);
* a training checkpoint (its ``.json``, its ``.safetensors`` or the common stem) whose state has
  ``model`` (the state dict) and optionally ``metrics`` (a dict) or ``history`` (a list of per-epoch
  dicts, the last one counts), ``config`` (the recipe), ``genotype`` (its text) and ``phase``;
* a run's ``final.safetensors`` with its ``final.json`` (format ``bnnzoo.final/1``: test metrics,
  dataset, mean/std, image size, recipe);
* a run folder: its ``final.safetensors``, else its ``checkpoint``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bnnzoo.errors import WeightsError

__all__ = ["TrainedState", "model_from_checkpoint", "read_checkpoint"]

FINAL_FORMAT = "bnnzoo.final/1"
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")
# Recipe fields that do not belong in a public model card (local paths, machine settings).
_PRIVATE_FIELDS = (
    "data_root",
    "output_dir",
    "teacher_weights",
    "device",
    "num_workers",
    "resume",
    "overwrite",
    "progress",
    "test_limit",
)


@dataclass
class TrainedState:
    """A model state dict with what its files say about it."""

    state_dict: dict[str, torch.Tensor]
    source: str
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the training recipe
    dataset: str | None = None
    genotype: str | None = None  # the genotype text the weights were trained for, when recorded
    binary_weights: bool = True  # False for a checkpoint from step 1 of two-step training
    image_size: int | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None


def _sibling_meta(path: Path) -> dict[str, Any] | None:
    json_file = path if path.suffix == ".json" else path.with_suffix(".json")
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _strip_wrappers(state: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    state = dict(state)
    for prefix in _WRAPPER_PREFIXES:
        if state and all(key.startswith(prefix) for key in state):
            state = {key[len(prefix) :]: value for key, value in state.items()}
    return state


def _recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    recipe = {key: value for key, value in config.items() if key not in _PRIVATE_FIELDS}
    model = recipe.get("model")
    if isinstance(model, str) and (model.endswith(".bnn") or "/" in model or os.sep in model):
        recipe["model"] = Path(model).name  # a local genotype file: its name, not where it was
    return recipe


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


def read_checkpoint(path: str | os.PathLike) -> TrainedState:
    """Read trained weights from any of the forms listed in the module docstring."""
    from bnnzoo._checkpoint import FORMAT as CHECKPOINT_FORMAT
    from bnnzoo._checkpoint import load_checkpoint, load_safetensors

    path = Path(path).expanduser()
    if path.is_dir():
        final = path / "final.safetensors"
        path = final if final.is_file() else path / "checkpoint.json"
        if not path.is_file():
            raise WeightsError(f"{path.parent}: a folder without final.safetensors or checkpoint.json")
    meta = _sibling_meta(path) if path.suffix in ("", ".json", ".safetensors") else None
    kind = meta.get("format") if meta else None
    if kind == FINAL_FORMAT:
        weights = path.with_suffix(".safetensors")
        metrics = {key: meta[key] for key in ("test_top1", "test_top5", "test_loss", "test_samples") if key in meta}
        recipe = meta.get("recipe")
        return TrainedState(
            _strip_wrappers(load_safetensors(weights)),
            str(weights),
            metrics,
            dict(recipe) if isinstance(recipe, Mapping) else {},
            dataset=meta.get("dataset") if isinstance(meta.get("dataset"), str) else None,
            genotype=meta.get("genotype") if isinstance(meta.get("genotype"), str) else None,
            binary_weights=bool(meta.get("binary_weights", True)),
            image_size=meta.get("image_size") if isinstance(meta.get("image_size"), int) else None,
            mean=_floats(meta.get("mean")),
            std=_floats(meta.get("std")),
        )
    if path.suffix == ".safetensors" and kind != CHECKPOINT_FORMAT:
        return TrainedState(_strip_wrappers(load_safetensors(path)), str(path))
    state = load_checkpoint(path)
    model_state = state.get("model") if isinstance(state, Mapping) else None
    if not isinstance(model_state, Mapping) or not all(isinstance(v, torch.Tensor) for v in model_state.values()):
        keys = ", ".join(sorted(state)) if isinstance(state, Mapping) else type(state).__name__
        raise WeightsError(f"{path}: the checkpoint has no 'model' state dict (it has: {keys})")
    metrics = state.get("metrics")
    if not isinstance(metrics, Mapping):
        history = state.get("history")
        metrics = history[-1] if isinstance(history, list) and history and isinstance(history[-1], Mapping) else {}
    config = state.get("config") if isinstance(state.get("config"), Mapping) else {}
    two_step_phase1 = state.get("phase") == 1 and config.get("two_step", True)
    genotype = state.get("genotype")
    return TrainedState(
        _strip_wrappers(model_state),
        str(path),
        dict(metrics),
        _recipe(config),
        dataset=_dataset_of(config),
        genotype=genotype if isinstance(genotype, str) else None,
        binary_weights=not two_step_phase1,
        image_size=config.get("image_size") if isinstance(config.get("image_size"), int) else None,
    )


def model_from_checkpoint(genotype: Any, checkpoint: str | os.PathLike):
    """Build the model of ``genotype`` (zoo name, ``.bnn`` path or Genotype) and load ``checkpoint`` into it.

    ``num_classes`` and ``in_chans`` are taken from the weights (the classifier's and the stem's
    shapes), so a model trained with other values than the genotype's loads. A checkpoint that
    records its genotype must match ``genotype``. Returns ``(model in eval mode, TrainedState)``;
    a checkpoint from step 1 of two-step training comes back with ``binary_weights`` off.
    """
    from bnnzoo import dsl
    from bnnzoo.build.binary import set_binary_weights
    from bnnzoo.dsl.library import resolve_genotype
    from bnnzoo.errors import BnnzooError
    from bnnzoo.export.packed import load_state_checked
    from bnnzoo.zoo import create_model

    genotype = resolve_genotype(genotype)
    trained = read_checkpoint(checkpoint)
    if trained.genotype is not None:
        try:
            recorded = dsl.parse(trained.genotype, f"{trained.source} (genotype)")
        except BnnzooError:
            recorded = None
        if recorded is not None and recorded != genotype:
            raise WeightsError(
                f"{trained.source}: trained for genotype '{recorded.name}', which differs from '{genotype.name}'"
            )
    state = trained.state_dict
    kwargs: dict[str, int] = {}
    if isinstance(state.get("fc.weight"), torch.Tensor) and state["fc.weight"].dim() == 2:
        kwargs["num_classes"] = int(state["fc.weight"].shape[0])
    elif "fc.weight" not in state:
        kwargs["num_classes"] = 0
    stem = state.get("stem.conv.weight")
    if isinstance(stem, torch.Tensor) and stem.dim() == 4:
        kwargs["in_chans"] = int(stem.shape[1])
    model = create_model(genotype, **kwargs)
    load_state_checked(model, state, source=trained.source)
    if not trained.binary_weights:
        set_binary_weights(model, False)
    model.eval()
    return model, trained
