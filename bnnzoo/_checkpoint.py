"""Checkpoints as safetensors plus JSON, written so that none is ever lost; never pickle.

A checkpoint ``run/ckpt`` is a pair: ``ckpt.<hash>.safetensors`` holds every tensor and
``ckpt.json`` everything else (a nested structure whose tensors are replaced by
``{"__tensor__": key}``), the name of the tensor file and its SHA-256. ``<hash>`` is the first 16
hex digits of that SHA-256, so a new checkpoint's tensors never overwrite the old one's.

:func:`save_checkpoint` writes, in this order:

1. the tensors, to a temporary file renamed to ``ckpt.<hash>.safetensors`` (a new name);
2. the JSON, to a temporary file renamed over ``ckpt.json``: this rename is the commit;
3. then it removes the previous tensor file and any leftovers of interrupted saves.

Killed anywhere before step 2's rename, ``ckpt.json`` still names the old, untouched tensor file;
after it, the new pair is complete. So at every instant ``ckpt.json`` and the file it names form a
complete checkpoint whose hash matches. What a kill leaves behind (temporary files, an unnamed
tensor file) is never read and is removed by the next save or by :func:`remove_leftovers`, which a
run calls on start and resume. Checkpoints written before this layout (``ckpt.safetensors``) load
as before: the JSON names its tensor file.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from bnnzoo._atomic import atomic_write_text, commit, remove_temporaries, sync_folder, temporary_file
from bnnzoo.errors import WeightsError

_HASH_DIGITS = 16
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
    """Write ``state`` (nested, with tensors) as the pair ``path.<hash>.safetensors`` + ``path.json``
    (see the module docstring for the order); return the JSON path."""
    base = Path(path)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = flatten(state, tensors)
    with temporary_file(base.parent, f"{base.name}.safetensors") as tmp:
        save_file(tensors, str(tmp))
        digest = _sha256(tmp)
        tensor_file = _sibling(base, f".{digest[:_HASH_DIGITS]}.safetensors")
        commit(tmp, tensor_file)
    meta = {"format": FORMAT, "tensors": tensor_file.name, "sha256": digest, "state": skeleton}
    json_file = _sibling(base, ".json")
    atomic_write_text(json_file, json.dumps(meta, indent=1, sort_keys=True))
    remove_leftovers(base)
    return json_file


def remove_leftovers(path: str | os.PathLike, others: Iterable[str] = ()) -> list[Path]:
    """Remove what interrupted saves of checkpoint ``path`` left: temporary files, and tensor files
    that ``path.json`` does not name; also the temporary files of the ``others`` files beside it
    (written with :func:`bnnzoo._atomic.atomic_path`). Returns the removed files."""
    base = Path(path)
    removed = remove_temporaries(base.parent, [f"{base.name}.safetensors", f"{base.name}.json", *others])
    try:
        meta = json.loads(_sibling(base, ".json").read_text(encoding="utf-8"))
        named = meta.get("tensors") if isinstance(meta, dict) else None
    except FileNotFoundError:
        named = None
    except (OSError, ValueError):
        return removed  # an unreadable JSON: keep every tensor file, one of them may be the one it names
    for candidate in _tensor_files(base):
        if candidate.name != named:
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
                removed.append(candidate)
    if removed:
        sync_folder(base.parent)
    return removed


def remove_checkpoint(path: str | os.PathLike) -> None:
    """Delete checkpoint ``path``: first its JSON (so it is gone at once), then its tensor files."""
    base = Path(path)
    with contextlib.suppress(FileNotFoundError):
        _sibling(base, ".json").unlink()
    remove_leftovers(base)


def _tensor_files(base: Path) -> list[Path]:
    """The tensor files a checkpoint ``base`` may have written: versioned ones, and the old layout's."""
    versioned = re.compile(rf"{re.escape(base.name)}\.[0-9a-f]{{{_HASH_DIGITS}}}\.safetensors")
    found = [
        path for path in base.parent.glob(f"{glob.escape(base.name)}.*.safetensors") if versioned.fullmatch(path.name)
    ]
    legacy = _sibling(base, ".safetensors")
    return found + ([legacy] if legacy.is_file() else [])


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (give either file or the common stem)."""
    base = Path(path)
    if base.suffix in (".json", ".safetensors"):
        base = base.with_suffix("")
    stem, dot, digits = base.name.rpartition(".")
    if dot and re.fullmatch(f"[0-9a-f]{{{_HASH_DIGITS}}}", digits):  # ckpt.<hash>.safetensors was given
        base = base.parent / stem
    json_file = _sibling(base, ".json")
    try:
        meta = json.loads(json_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise WeightsError(f"{json_file}: no such checkpoint (expected {base.name}.json and .safetensors)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint (format {FORMAT} expected)")
    named = meta.get("tensors")
    if not isinstance(named, str) or Path(named).name != named or not isinstance(meta.get("sha256"), str):
        raise WeightsError(f"{json_file}: not a bnnzoo checkpoint (no tensor file name and hash)")
    tensor_file = json_file.parent / named
    if not tensor_file.is_file():
        raise WeightsError(f"{tensor_file}: missing; the checkpoint is incomplete")
    if _sha256(tensor_file) != meta["sha256"]:
        raise WeightsError(f"{tensor_file}: does not match {json_file.name} (truncated or replaced)")
    try:
        return unflatten(meta.get("state"), load_safetensors(tensor_file))
    except (KeyError, TypeError, ValueError) as exc:
        raise WeightsError(f"{json_file}: its state does not match {tensor_file.name} ({exc!r})") from None


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
