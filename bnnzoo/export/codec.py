"""The ``bnnzoo.packed/1`` codec: sign bits packed per output channel, and the safetensors file with its metadata.

Bits: row ``o`` of ``<conv>.weight.bits`` holds the signs of ``weight[o].flatten()`` (C order),
element ``i`` in bit ``i % 8`` (least significant first) of byte ``i // 8``, 1 for ``+1``; each row
is zero-padded to a whole byte (``numpy.packbits(bitorder="little")``). The file: tensors in one
safetensors file, its metadata ``format``, ``genotype``, and the JSON objects ``model_args``,
``packed`` and ``flags`` (docs/packed_format.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from bnnzoo._atomic import atomic_path
from bnnzoo.errors import WeightsError

FORMAT = "bnnzoo.packed/1"
BITS_SUFFIX = ".bits"
SCALE_SUFFIX = ".scale"
JSON_FIELDS = ("model_args", "packed", "flags")  # metadata fields holding a JSON object


# -- bit packing ------------------------------------------------------------------------------


def pack_signs(weight: torch.Tensor) -> torch.Tensor:
    """Pack ``weight >= 0`` per output channel: ``uint8`` of shape ``(O, ceil(n / 8))``, LSB first
    (``numpy.packbits(bitorder="little")``, zero-padded)."""
    positive = (weight.detach() >= 0).reshape(weight.shape[0], -1).cpu().numpy()
    return torch.from_numpy(np.packbits(positive, axis=1, bitorder="little"))


def unpack_signs(bits: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Inverse of :func:`pack_signs`: a float32 tensor of ``shape`` holding ``+1`` and ``-1``."""
    rows = shape[0]
    n = 1
    for size in shape[1:]:
        n *= size
    expected = (rows, -(-n // 8))
    if tuple(bits.shape) != expected or bits.dtype != torch.uint8:
        raise WeightsError(
            f"packed bits of shape {tuple(bits.shape)} ({bits.dtype}) do not fit a weight of shape "
            f"{tuple(shape)}: expected uint8 {expected}"
        )
    flags = np.unpackbits(bits.cpu().numpy(), axis=1, count=n, bitorder="little")
    return torch.from_numpy(flags.astype(np.float32) * 2 - 1).reshape(shape)


# -- the file ------------------------------------------------------------------------------------


def write_packed_file(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, Any]) -> Path:
    """Write ``tensors`` with ``metadata`` (its JSON fields as objects) atomically; returns ``path``."""
    encoded = {
        key: json.dumps(value, sort_keys=True, separators=(",", ":")) if key in JSON_FIELDS else value
        for key, value in metadata.items()
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=encoded)
    return path


def read_packed_file(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """The decoded metadata of a packed file and (if ``tensors``) its tensors; a :class:`WeightsError`
    for a missing, corrupt or foreign file or malformed metadata."""
    if not path.is_file():
        raise WeightsError(f"{path}: no such packed weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
            keys = list(handle.keys()) if tensors else []  # noqa: SIM118 (safe_open is not a dict)
            data = {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file (truncated or corrupt): {exc}") from None
    if raw.get("format") != FORMAT:
        found = raw.get("format")
        what = f"format {found!r}" if found else "no 'format' in its metadata"
        raise WeightsError(f"{path}: not a bnnzoo packed file ({what}; expected {FORMAT!r})")
    metadata: dict[str, Any] = {"format": FORMAT, "genotype": raw.get("genotype")}
    if not isinstance(metadata["genotype"], str):
        raise WeightsError(f"{path}: the packed file has no genotype in its metadata")
    for field in JSON_FIELDS:
        try:
            value = json.loads(raw[field]) if field in raw else {}
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path}: metadata '{field}' is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise WeightsError(f"{path}: metadata '{field}' must be a JSON object")
        metadata[field] = value
    metadata["bnnzoo_version"] = raw.get("bnnzoo_version")
    return metadata, data


def read_packed_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded metadata of a packed file: ``genotype`` text, ``model_args``, ``packed``, ``flags``."""
    metadata, _ = read_packed_file(Path(path), tensors=False)
    return metadata
