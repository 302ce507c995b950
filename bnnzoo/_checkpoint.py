"""Checkpoints as safetensors plus JSON, written atomically; never pickle.

A checkpoint ``run/ckpt`` is two files: ``ckpt.safetensors`` holds every tensor, ``ckpt.json``
holds everything else (a nested structure whose tensors are replaced by ``{"__tensor__": key}``)
and the SHA-256 of the tensor file. The JSON is written last, so a checkpoint is complete exactly
when its JSON exists and the hash matches.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bnnzoo._atomic import atomic_path, atomic_write_text
from bnnzoo.errors import WeightsError

_TENSOR = "__tensor__"
_TUPLE = "__tuple__"
_ITEMS = "__items__"  # a dict with non-string keys (optimizer state is keyed by int)
FORMAT = "bnnzoo.checkpoint/1"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "") -> Any:
    """Replace the tensors in a nested dict/list/tuple structure by references into ``tensors``."""
    if isinstance(obj, torch.Tensor):
        key = prefix or "tensor"
        tensors[key] = obj.detach().cpu().contiguous()
        return {_TENSOR: key}
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            return {_ITEMS: [[k, flatten(v, tensors, f"{prefix}.{k}" if prefix else str(k))] for k, v in obj.items()]}
        return {k: flatten(v, tensors, f"{prefix}.{k}" if prefix else k) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {_TUPLE: [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [flatten(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    return obj


def unflatten(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of :func:`flatten`."""
    if isinstance(obj, dict):
        if set(obj) == {_TENSOR}:
            return tensors[obj[_TENSOR]]
        if set(obj) == {_TUPLE}:
            return tuple(unflatten(v, tensors) for v in obj[_TUPLE])
        if set(obj) == {_ITEMS}:
            return {k: unflatten(v, tensors) for k, v in obj[_ITEMS]}
        return {k: unflatten(v, tensors) for k, v in obj.items()}
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    return obj


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (nested, with tensors) as ``path.safetensors`` + ``path.json``; return the JSON path."""
    base = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    tensor_file = _sibling(base, ".safetensors")
    with atomic_path(tensor_file) as tmp:
        save_file(tensors, str(tmp))
        digest = _sha256(tmp)
    meta = {"format": FORMAT, "tensors": tensor_file.name, "sha256": digest, "state": skeleton}
    json_file = _sibling(base, ".json")
    atomic_write_text(json_file, json.dumps(meta, indent=1, sort_keys=True))
    return json_file


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (give either file or the common stem)."""
    base = Path(path)
    if base.suffix in (".json", ".safetensors"):
        base = base.with_suffix("")
    json_file = _sibling(base, ".json")
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{json_file}: no such checkpoint (expected {base.name}.json and .safetensors)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint (format {FORMAT} expected)")
    tensor_file = json_file.parent / meta["tensors"]
    if not tensor_file.is_file():
        raise WeightsError(f"{tensor_file}: missing; the checkpoint is incomplete")
    if _sha256(tensor_file) != meta["sha256"]:
        raise WeightsError(f"{tensor_file}: does not match {json_file.name} (truncated or replaced)")
    return unflatten(meta["state"], load_safetensors(tensor_file))


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file; a truncated or foreign file raises :class:`WeightsError`."""
    try:
        return load_file(str(path))
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file (truncated or corrupt): {exc}") from None


def _sibling(base: Path, suffix: str) -> Path:
    """``run/ckpt.epoch3`` -> ``run/ckpt.epoch3.json`` (with_suffix would drop ``.epoch3``)."""
    return base.parent / f"{base.name}{suffix}"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
