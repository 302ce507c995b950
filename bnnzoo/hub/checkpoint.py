"""Trained weights for publishing: :class:`TrainedState`, the card-ready view of what :mod:`bnnzoo.trained` reads.

:func:`read_checkpoint` accepts every form :func:`bnnzoo.trained.load_trained_weights` does (a state
dict file, a training checkpoint, a run's final weights, a run folder) and drops the recipe fields
that do not belong in a public card; :func:`model_from_checkpoint` builds the model and loads them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from bnnzoo import dsl
from bnnzoo.build.binary import set_binary_weights
from bnnzoo.dsl.library import resolve_genotype
from bnnzoo.errors import BnnzooError, WeightsError
from bnnzoo.trained import load_state_checked, load_trained_weights
from bnnzoo.zoo import create_model

__all__ = ["TrainedState", "model_from_checkpoint", "read_checkpoint"]

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


def _recipe(config: Mapping[str, Any]) -> dict[str, Any]:
    recipe = {key: value for key, value in config.items() if key not in _PRIVATE_FIELDS}
    model = recipe.get("model")
    if isinstance(model, str) and (model.endswith(".bnn") or "/" in model or os.sep in model):
        recipe["model"] = Path(model).name  # a local genotype file: its name, not where it was
    return recipe


def read_checkpoint(path: str | os.PathLike) -> TrainedState:
    """Read trained weights (any form :mod:`bnnzoo.trained` reads) with the recipe fit for a public card."""
    trained = load_trained_weights(path)
    return TrainedState(
        trained.state_dict,
        str(trained.source),
        trained.metrics,
        trained.config if trained.kind == "final" else _recipe(trained.config),
        dataset=trained.dataset,
        genotype=trained.genotype,
        binary_weights=trained.binary_weights,
        image_size=trained.image_size,
        mean=trained.mean,
        std=trained.std,
    )


def model_from_checkpoint(genotype: Any, checkpoint: str | os.PathLike):
    """Build the model of ``genotype`` (zoo name, ``.bnn`` path or Genotype) and load ``checkpoint`` into it.

    ``num_classes`` and ``in_chans`` are taken from the weights (the classifier's and the stem's
    shapes), so a model trained with other values than the genotype's loads. A checkpoint that
    records its genotype must match ``genotype``. Returns ``(model in eval mode, TrainedState)``;
    a checkpoint from step 1 of two-step training comes back with ``binary_weights`` off.
    """
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
