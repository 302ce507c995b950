"""Checks of a packed file's convolution metadata, before and after the model is built from it.

``load_packed`` builds the model from the genotype and checks every tensor's shape; the ``packed``
entries also describe each binary convolution (shape, stride, padding, dilation, groups). The
runtime requires them to be well-formed and to agree with the built model, so that a file whose
metadata was damaged is refused with the first disagreement named.
"""

from __future__ import annotations

import os
from typing import Any

from torch import nn

from bnnzoo.errors import WeightsError
from bnnzoo.export.checks import packed_conv

_GEOMETRY = ("shape", "stride", "padding", "dilation", "groups")


def _int_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)


def check_packed_metadata(metadata: dict[str, Any], path: str | os.PathLike) -> None:
    """Every ``packed`` entry is an object whose geometry fields are integer lists (groups an integer);
    every ``flags`` entry an object."""
    for key, entry in metadata["packed"].items():
        if not isinstance(entry, dict):
            raise WeightsError(f"{path}: metadata 'packed' entry {key!r} is not a JSON object")
        for field in _GEOMETRY:
            if field not in entry:
                continue
            value = entry[field]
            ok = isinstance(value, int) and not isinstance(value, bool) if field == "groups" else _int_list(value)
            if not ok:
                raise WeightsError(f"{path}: metadata of {key}: {field} {value!r} is not well-formed")
        for field in ("bits", "scale", "threshold"):
            if entry.get(field) is not None and not isinstance(entry[field], str):
                raise WeightsError(f"{path}: metadata of {key}: {field} must name a tensor")
    for name, flags in metadata["flags"].items():
        if not isinstance(flags, dict):
            raise WeightsError(f"{path}: metadata 'flags' entry {name!r} is not a JSON object")


def check_against_model(metadata: dict[str, Any], model: nn.Module, path: str | os.PathLike) -> None:
    """The metadata's convolution geometry is the built model's."""
    modules = dict(model.named_modules())
    for key, entry in metadata["packed"].items():
        conv = packed_conv(modules, key, path)
        built = {
            "shape": list(conv.weight.shape),
            "stride": list(conv.stride),
            "padding": list(conv.padding),
            "dilation": list(conv.dilation),
            "groups": int(conv.groups),
        }
        for field, value in built.items():
            if field in entry and entry[field] != value:
                raise WeightsError(
                    f"{path}: metadata of {key} says {field} {entry[field]}, but the genotype builds {value}"
                )
