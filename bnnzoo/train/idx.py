"""Fashion-MNIST from its gzipped IDX files (the Debian package's layout), cached per file stamp."""

from __future__ import annotations

import gzip
import struct
import zlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from bnnzoo._datasets import DEFAULT_FASHION_MNIST_ROOT, ROOT_ENV_VARS
from bnnzoo.errors import DataError

# --------------------------------------------------------------------------- Fashion-MNIST (IDX)

_FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_fashion_mnist_arrays(root: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of a Fashion-MNIST split under ``root``."""
    files = [_find_idx_file(root, stem) for stem in _FASHION_FILES[split]]
    missing = [f"{stem}.gz" for stem, path in zip(_FASHION_FILES[split], files, strict=True) if path is None]
    if missing:
        raise DataError(
            f"Fashion-MNIST not found: {root} lacks {', '.join(missing)}. Install it with "
            f"`apt-get install dataset-fashion-mnist` (files go to {DEFAULT_FASHION_MNIST_ROOT}), "
            f"or pass --data-root DIR (or set {ROOT_ENV_VARS['fashion_mnist']}) to a folder holding "
            f"the *-ubyte.gz files."
        )
    images_path, labels_path = (path for path in files if path is not None)
    return _cached_fashion_arrays(_stamp(images_path), _stamp(labels_path))


def _find_idx_file(root: Path, stem: str) -> Path | None:
    for candidate in (root / f"{stem}.gz", root / stem):
        if candidate.is_file():
            return candidate
    return None


def _stamp(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=2)
def _cached_fashion_arrays(
    images_stamp: tuple[str, int, int], labels_stamp: tuple[str, int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = Path(images_stamp[0]), Path(labels_stamp[0])
    images = read_idx(images_path, ndim=3)
    labels = read_idx(labels_path, ndim=1)
    if images.shape[1:] != (28, 28):
        raise DataError(f"{images_path}: expected 28x28 images, got {images.shape[1]}x{images.shape[2]}")
    if labels.shape[0] != images.shape[0]:
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels).to(torch.int64)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes with ``ndim`` dimensions (gunzipped if it ends in .gz)."""
    raw = read_maybe_gzip(path)
    header_size = 4 + 4 * ndim
    magic = 0x0800 | ndim
    if len(raw) < header_size:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, header needs {header_size})")
    if struct.unpack(">I", raw[:4])[0] != magic:
        raise DataError(f"{path}: not an IDX file of {ndim}-d unsigned bytes (magic {raw[:4].hex()}, want {magic:08x})")
    shape = struct.unpack(f">{ndim}I", raw[4:header_size])
    expected = header_size + int(np.prod(shape))
    if len(raw) != expected:
        raise DataError(f"{path}: truncated or corrupt IDX file: {len(raw)} bytes, shape {shape} needs {expected}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when it ends in ``.gz``; a truncated or corrupt file raises DataError."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from exc
