"""Image-classification datasets for search and training, read from local files only.

Nothing here ever downloads. The datasets are:

* ``fashion_mnist`` — the default, from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), parsed from its gzipped IDX files.
* ``cifar10`` / ``cifar100`` — from a folder the user gives, in the torchvision layout
  (``cifar-10-batches-py``, ``cifar-100-python``) or the CIFAR-10 binary layout
  (``cifar-10-batches-bin``). The Python batches are pickles; they are read with a restricted
  unpickler that only rebuilds numpy arrays, so a hostile file cannot run code.
* ``imagefolder`` — an ImageNet-style ``ROOT/train/<class>/*`` and ``ROOT/val/<class>/*`` tree.
* ``synthetic`` — seeded random images, for tests only.

A root can also come from an environment variable (see :data:`ROOT_ENV_VARS`).
"""

from __future__ import annotations

import gzip
import importlib
import os
import pickle
import struct
import zlib
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from bnnzoo._datasets import DATASETS, IMAGENET_MEAN, IMAGENET_STD, DatasetInfo, dataset_info  # noqa: F401 (re-exported)
from bnnzoo._datasets import choice_hint as _did_you_mean
from bnnzoo.errors import DataError

SPLITS = ("train", "test")
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV_VARS = {
    "fashion_mnist": "BNNZOO_FASHION_MNIST",
    "cifar10": "BNNZOO_CIFAR10",
    "cifar100": "BNNZOO_CIFAR100",
    "imagefolder": "BNNZOO_IMAGEFOLDER",
}
CROP_PADDING = 4
SYNTHETIC_SIZES = {"train": 256, "test": 64}

_FASHION_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
_CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


# --------------------------------------------------------------------------- in-memory dataset


class TensorImageDataset(Dataset[tuple[torch.Tensor, int]]):
    """Images kept as a uint8 tensor (N, C, H, W) with int64 labels, normalised on access.

    ``image_size`` makes items square of that side: zero padding around the image when ``pad`` is
    set and the image fits (Fashion-MNIST 28 -> 32), bilinear resizing otherwise. ``augment`` adds
    a random crop with ``CROP_PADDING`` pixels of zero padding, plus a horizontal flip when
    ``flip`` is set; it draws from torch's global RNG (DataLoader seeds it per worker). Without
    ``augment`` every item is fully deterministic.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        mean: Sequence[float],
        std: Sequence[float],
        num_classes: int,
        classes: Sequence[str] | None = None,
        image_size: int | None = None,
        pad: bool = False,
        augment: bool = False,
        flip: bool = True,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise DataError(f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise DataError(f"{images.shape[0]} images but labels of shape {tuple(labels.shape)}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.num_classes = num_classes
        self.classes = tuple(classes) if classes is not None else tuple(str(i) for i in range(num_classes))
        self.image_size = image_size
        self.pad = pad
        self.augment = augment
        self.flip = flip
        self._mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self._std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    @property
    def targets(self) -> list[int]:
        """Labels as a list, like torchvision datasets."""
        return self.labels.tolist()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].to(torch.float32).div_(255.0)
        if self.image_size is not None:
            image = _fit(image, self.image_size, pad=self.pad)
        if self.augment:
            image = _random_crop(image, CROP_PADDING)
            if self.flip and bool(torch.rand(()) < 0.5):
                image = image.flip(-1)
        return (image - self._mean) / self._std, int(self.labels[index])


def _fit(image: torch.Tensor, size: int, *, pad: bool) -> torch.Tensor:
    """Make a (C, H, W) float image ``size`` x ``size`` by zero padding or bilinear resizing."""
    height, width = image.shape[-2:]
    if height == width == size:
        return image
    if pad and height <= size and width <= size:
        top, left = (size - height) // 2, (size - width) // 2
        return F.pad(image, (left, size - width - left, top, size - height - top))
    resized = F.interpolate(image[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return resized[0].clamp_(0.0, 1.0)


def _random_crop(image: torch.Tensor, padding: int) -> torch.Tensor:
    """A random crop of the original size from the image zero-padded by ``padding`` pixels."""
    height, width = image.shape[-2:]
    padded = F.pad(image, (padding,) * 4)
    top, left = (int(v) for v in torch.randint(0, 2 * padding + 1, (2,)))
    return padded[..., top : top + height, left : left + width]


# --------------------------------------------------------------------------- public entry points


def load_dataset(
    name: str,
    split: str = "train",
    root: str | os.PathLike[str] | None = None,
    *,
    image_size: int | None = None,
    augment: bool = False,
    limit: int | None = None,
    seed: int = 0,
) -> Dataset[Any]:
    """Load ``split`` ("train" or "test") of dataset ``name`` from local files; never downloads.

    ``root`` overrides where the files are (default: the dataset's environment variable, then for
    Fashion-MNIST the Debian package's folder). ``limit`` keeps the first N samples; for
    ``synthetic`` it is the number of samples generated. ``seed`` only seeds ``synthetic``.
    Items are ``(float image tensor (C, H, W), int label)``, normalised with the dataset's mean/std.
    """
    info = dataset_info(name)
    _check_args(split, image_size, limit)
    if name == "synthetic":
        count = limit if limit is not None else SYNTHETIC_SIZES[split]
        size = image_size or info.input_shape[-1]
        shape = (info.input_shape[0], size, size)
        return synthetic_dataset(count, shape, info.num_classes, seed=2 * seed + (split == "test"), augment=augment)
    if name == "imagefolder":
        return _load_imagefolder(_resolve_root(name, root), split, image_size, augment, limit)
    if name == "fashion_mnist":
        images, labels = load_fashion_mnist_arrays(_resolve_root(name, root), split)
        classes: Sequence[str] | None = _FASHION_CLASSES
    else:
        images, labels = load_cifar_arrays(name, _resolve_root(name, root), split)
        classes = _CIFAR10_CLASSES if name == "cifar10" else None
    _check_labels(labels, info.num_classes, f"{name} {split}")
    return TensorImageDataset(
        images[:limit],
        labels[:limit],
        mean=info.mean,
        std=info.std,
        num_classes=info.num_classes,
        classes=classes,
        image_size=image_size,
        pad=name == "fashion_mnist",
        augment=augment,
        flip=name != "fashion_mnist",
    )


def synthetic_dataset(
    num_samples: int = 256,
    input_shape: tuple[int, int, int] = (3, 32, 32),
    num_classes: int = 10,
    *,
    seed: int = 0,
    augment: bool = False,
) -> TensorImageDataset:
    """Random uint8 images with random labels, identical for the same arguments. For tests only."""
    if num_samples < 0 or num_classes < 1 or len(input_shape) != 3 or min(input_shape) < 1:
        raise DataError(
            f"synthetic data needs num_samples >= 0, num_classes >= 1 and a (C, H, W) shape, "
            f"got {num_samples}, {num_classes}, {input_shape}"
        )
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num_samples, *input_shape), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, num_classes, (num_samples,), generator=generator)
    info = dataset_info("synthetic")
    channels = input_shape[0]
    return TensorImageDataset(
        images,
        labels,
        mean=(info.mean[0],) * channels,
        std=(info.std[0],) * channels,
        num_classes=num_classes,
        augment=augment,
    )


def make_loader(
    dataset: Dataset[Any],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    sampler: Sampler[Any] | None = None,
) -> DataLoader[Any]:
    """A DataLoader whose shuffling (and worker seeds) come from a generator seeded with ``seed``."""
    if batch_size < 1:
        raise DataError(f"batch size must be at least 1, got {batch_size}")
    if shuffle and sampler is not None:
        raise DataError("pass either shuffle=True or a sampler, not both")
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        drop_last=drop_last,
        generator=generator,
    )


def split_train_val(dataset: Dataset[Any], val_fraction: float = 0.5, seed: int = 0) -> tuple[Subset[Any], Subset[Any]]:
    """Split into disjoint (train, val) subsets by a permutation seeded with ``seed`` (DARTS search)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be strictly between 0 and 1, got {val_fraction}")
    total = len(dataset)  # type: ignore[arg-type]
    num_val = round(total * val_fraction)
    if num_val < 1 or num_val >= total:
        raise DataError(f"cannot split {total} samples with val_fraction={val_fraction}: a part would be empty")
    order = torch.randperm(total, generator=torch.Generator().manual_seed(seed)).tolist()
    return Subset(dataset, sorted(order[num_val:])), Subset(dataset, sorted(order[:num_val]))


def _check_args(split: str, image_size: int | None, limit: int | None) -> None:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}{_did_you_mean(split, SPLITS)}")
    if image_size is not None and image_size < 1:
        raise DataError(f"image_size must be positive, got {image_size}")
    if limit is not None and limit < 0:
        raise DataError(f"limit must be zero or more, got {limit}")


def _check_labels(labels: torch.Tensor, num_classes: int, what: str) -> None:
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise DataError(f"{what}: labels must lie in 0..{num_classes - 1}, found {int(labels.max())}")


def _resolve_root(name: str, root: str | os.PathLike[str] | None) -> Path:
    env = ROOT_ENV_VARS[name]
    if root is None:
        root = os.environ.get(env) or (DEFAULT_FASHION_MNIST_ROOT if name == "fashion_mnist" else None)
    if root is None:
        raise DataError(
            f"{name} needs a data folder: pass --data-root DIR (or set {env}); "
            f"expected layout: {_LAYOUT_HELP[name]}. bnnzoo never downloads datasets."
        )
    return Path(root).expanduser()


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
    raw = _read_maybe_gzip(path)
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


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read (truncated or corrupt file?): {exc}") from exc


# --------------------------------------------------------------------------- CIFAR

_LAYOUT_HELP = {
    "fashion_mnist": "DIR/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz",
    "cifar10": (
        "ROOT/cifar-10-batches-py/{data_batch_1..5,test_batch} (python version, torchvision layout) or "
        "ROOT/cifar-10-batches-bin/{data_batch_1..5.bin,test_batch.bin} (binary version); "
        "ROOT may also be the inner folder itself"
    ),
    "cifar100": (
        "ROOT/cifar-100-python/{train,test} (python version, torchvision layout); "
        "ROOT may also be the inner folder itself"
    ),
    "imagefolder": "ROOT/train/<class>/*.jpg and ROOT/val/<class>/*.jpg",
}
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
            raise DataError(f"{name}: {path} is missing; expected layout: {_LAYOUT_HELP[name]}")
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
        f"{name} not found under {root}: expected {_LAYOUT_HELP[name]}. Looked for: {', '.join(looked)}. "
        "bnnzoo never downloads datasets; unpack the archive from "
        "https://www.cs.toronto.edu/~kriz/cifar.html into ROOT yourself."
    )


def _read_cifar_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = _read_maybe_gzip(path)
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


# --------------------------------------------------------------------------- image folders


def _load_imagefolder(root: Path, split: str, image_size: int | None, augment: bool, limit: int | None) -> Dataset[Any]:
    from torchvision import datasets, transforms

    folder = root / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise DataError(f"imagefolder: {folder} is not a folder; expected {_LAYOUT_HELP['imagefolder']}")
    if not any(child.is_dir() for child in folder.iterdir()):
        raise DataError(f"imagefolder: {folder} has no class folders; expected {_LAYOUT_HELP['imagefolder']}")
    size = image_size or dataset_info("imagefolder").input_shape[-1]
    if augment:
        geometry = [transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip()]
    else:
        geometry = [transforms.Resize(round(size * 256 / 224)), transforms.CenterCrop(size)]
    transform = transforms.Compose(
        [*geometry, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    try:
        dataset = datasets.ImageFolder(str(folder), transform=transform, loader=_load_rgb)
    except OSError as exc:  # torchvision: no class folders or no images
        raise DataError(f"imagefolder: {folder}: {exc}") from exc
    if limit is not None:
        return Subset(dataset, range(min(limit, len(dataset))))
    return dataset


def _load_rgb(path: str) -> Any:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image: {exc}") from exc
