"""CIFAR-10/100 batches: the python version (pickles, read with a restricted unpickler that only
rebuilds numpy arrays, so a hostile file cannot run code) and the CIFAR-10 binary version."""

from __future__ import annotations

import importlib
import pickle
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch

from bnnzoo._datasets import LAYOUT_HELP
from bnnzoo.errors import DataError
from bnnzoo.train.idx import read_maybe_gzip

# --------------------------------------------------------------------------- CIFAR

# (folder name, "python" or "binary", file that marks the layout)
_CIFAR_LAYOUTS = {
    "cifar10": (
        ("cifar-10-batches-py", "python", "test_batch"),
        ("cifar-10-batches-bin", "binary", "test_batch.bin"),
    ),
    "cifar100": (("cifar-100-python", "python", "test"),),
}
_CIFAR_FILES = {
    ("cifar10", "python"): {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]},
    ("cifar10", "binary"): {
        "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
        "test": ["test_batch.bin"],
    },
    ("cifar100", "python"): {"train": ["train"], "test": ["test"]},
}
_CIFAR_PIXELS = 3 * 32 * 32


def load_cifar_arrays(name: str, root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of a CIFAR split under ``root``."""
    folder, kind = find_cifar_folder(name, root)
    parts = []
    for file_name in _CIFAR_FILES[(name, kind)][split]:
        path = folder / file_name
        if not path.is_file():
            raise DataError(f"{name}: {path} is missing; expected layout: {LAYOUT_HELP[name]}")
        parts.append(_read_cifar_binary(path) if kind == "binary" else _read_cifar_pickle(path, name))
    data = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return torch.from_numpy(data.reshape(-1, 3, 32, 32)), torch.from_numpy(labels.astype(np.int64))


def find_cifar_folder(name: str, root: Path) -> tuple[Path, str]:
    """The folder holding the ``name`` batches under (or at) ``root`` and its kind: python/binary."""
    looked = []
    for folder_name, kind, marker in _CIFAR_LAYOUTS[name]:
        for folder in (root / folder_name, root):
            looked.append(str(folder / marker))
            if (folder / marker).is_file():
                return folder, kind
    raise DataError(
        f"{name} not found under {root}: expected {LAYOUT_HELP[name]}. Looked for: {', '.join(looked)}. "
        "bnnzoo never downloads datasets; unpack the archive from "
        "https://www.cs.toronto.edu/~kriz/cifar.html into ROOT yourself."
    )


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = read_maybe_gzip(path)
    record = 1 + _CIFAR_PIXELS
    if not raw or len(raw) % record:
        raise DataError(
            f"{path}: truncated or corrupt CIFAR binary batch: {len(raw)} bytes is not a multiple of {record}"
        )
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return rows[:, 1:].copy(), rows[:, 0].astype(np.int64)


def _read_cifar_pickle(path: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    batch = safe_unpickle(path)
    if not isinstance(batch, dict):
        raise DataError(f"{path}: a CIFAR batch must be a dict, got {type(batch).__name__}")
    data = _entry(batch, "data", path)
    labels = _entry(batch, "labels" if name == "cifar10" else "fine_labels", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != _CIFAR_PIXELS:
        raise DataError(f"{path}: 'data' must be a uint8 array of shape (N, {_CIFAR_PIXELS})")
    try:
        label_array = np.asarray(labels)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{path}: unreadable labels: {exc}") from exc
    if label_array.shape != (data.shape[0],) or label_array.dtype.kind not in "iu":
        raise DataError(f"{path}: expected {data.shape[0]} integer labels, got shape {label_array.shape}")
    return data, label_array.astype(np.int64)


def _entry(batch: dict[Any, Any], key: str, path: Path) -> Any:
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path}: no {key!r} entry in the CIFAR batch (keys: {sorted(map(repr, batch))})")


# --------------------------------------------------------------------------- safe unpickling

_SAFE_BUILTINS = ("bytearray", "bytes", "complex", "frozenset", "set")


def _numpy_module(new: str, old: str) -> Any:
    """``numpy._core.x`` on numpy 2, ``numpy.core.x`` on numpy 1 (avoiding numpy 2's shim warning)."""
    try:
        return importlib.import_module(new)
    except ImportError:
        return importlib.import_module(old)


@lru_cache(maxsize=1)
def _safe_globals() -> dict[tuple[str, str], Any]:
    import builtins
    import codecs

    multiarray = _numpy_module("numpy._core.multiarray", "numpy.core.multiarray")
    numeric = _numpy_module("numpy._core.numeric", "numpy.core.numeric")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): codecs.encode,
    }
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = multiarray._reconstruct
        allowed[(module, "scalar")] = multiarray.scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = numeric._frombuffer
    for module in ("builtins", "__builtin__"):
        allowed.update({(module, name): getattr(builtins, name) for name in _SAFE_BUILTINS})
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only rebuilds numpy arrays, dtypes, bytes and plain containers."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = _safe_globals().get((module, name))
        if allowed is None:
            raise DataError(
                f"refusing to load {module}.{name} from a pickle: CIFAR batches may only hold numpy "
                f"arrays, lists, dicts and bytes"
            )
        return allowed


def safe_unpickle(path: Path) -> Any:
    """Unpickle ``path`` with :class:`RestrictedUnpickler`; anything unexpected raises DataError."""
    try:
        with path.open("rb") as handle:
            return _load_restricted(handle)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from exc
    except Exception as exc:  # a malformed pickle can fail in many ways; all mean "bad file"
        raise DataError(f"{path}: not a readable CIFAR pickle (truncated or corrupt?): {exc}") from exc


def _load_restricted(handle: BinaryIO) -> Any:
    return RestrictedUnpickler(handle, encoding="bytes").load()
