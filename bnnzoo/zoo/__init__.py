"""The zoo: timm registration of every genotype, ``create_model`` and ``list_models``."""

from __future__ import annotations

import fnmatch
import os
from typing import Any

import timm
from timm.models import get_pretrained_cfg

from bnnzoo._suggest import did_you_mean
from bnnzoo.dsl.library import is_genotype_path, resolve_genotype, zoo_genotype_names
from bnnzoo.dsl.types import Genotype
from bnnzoo.errors import ModelError
from bnnzoo.zoo import models  # noqa: F401  (registers the zoo with timm)
from bnnzoo.zoo.models import GENERIC_ARCHITECTURE, TRAINED_TAGS, check_tag

__all__ = ["create_model", "list_models", "pretrained_tags"]

HUB_PREFIXES = ("hf-hub:", "hf_hub:", "local-dir:")  # published repos: timm loads them


def list_models(pattern: str = "*", pretrained: bool = False) -> list[str]:
    """Zoo model names matching a glob; with ``pretrained=True``, only ``name.tag`` with weights."""
    if pretrained:
        return [name for name in timm.list_models(pattern, pretrained=True) if name.split(".")[0] in _zoo()]
    return [name for name in zoo_genotype_names() if fnmatch.fnmatch(name, pattern)]


def pretrained_tags(name: str) -> list[str]:
    """The tags of zoo model ``name`` that have trained weights."""
    return [tag.split(".", 1)[1] for tag in timm.list_models(name, pretrained=True)]


def create_model(model: str | os.PathLike | Genotype, pretrained: bool = False, **kwargs: Any):
    """Build a zoo model by name (``"mbconv_a"``, ``"mbconv_a.fashion_mnist"``), a ``.bnn`` path,
    a :class:`Genotype`, or a published repo (``"hf-hub:ORG/NAME"``, ``"local-dir:PATH"``, loaded by timm;
    ``bnnzoo.create_model`` checks the repo first and names what is wrong)."""
    if isinstance(model, str) and model.startswith(HUB_PREFIXES):
        return timm.create_model(model, pretrained=pretrained, **kwargs)  # bnnzoo.create_model checks first
    if isinstance(model, str) and model.split(".")[0] in _zoo():
        if pretrained:
            _require_weights(model)
        return timm.create_model(model, pretrained=pretrained, **kwargs)
    if isinstance(model, Genotype) or (isinstance(model, (str, os.PathLike)) and is_genotype_path(model)):
        if pretrained:
            raise ModelError(
                "pretrained weights exist for zoo names and published repos only; "
                "load your own with bnnzoo.hub or pass checkpoint_path="
            )
        return timm.create_model(GENERIC_ARCHITECTURE, genotype=resolve_genotype(model), **kwargs)
    raise ModelError(f"unknown model '{model}'{did_you_mean(str(model), zoo_genotype_names())}")


def _zoo() -> set[str]:
    return set(zoo_genotype_names())


def _require_weights(name: str) -> None:
    base, _, tag = name.partition(".")
    if tag:
        check_tag(base, tag)
    if "." not in name and TRAINED_TAGS.get(name):
        return  # pretrained=True without a tag loads the model's first trained tag
    cfg = get_pretrained_cfg(name, allow_unregistered=False)
    if cfg is None or not cfg.has_weights:
        tags = pretrained_tags(name.split(".")[0])
        available = ", ".join(f"{name.split('.')[0]}.{tag}" for tag in tags) or "none yet"
        raise ModelError(f"'{name}' has no trained weights (tags with weights: {available})")
