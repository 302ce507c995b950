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

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from bnnzoo._datasets import (  # noqa: F401 (re-exported)
    DATASETS,
    DEFAULT_FASHION_MNIST_ROOT,
    LAYOUT_HELP,
    ROOT_ENV_VARS,
    DatasetInfo,
    dataset_info,
)
from bnnzoo._datasets import choice_hint as _did_you_mean
from bnnzoo.errors import DataError
from bnnzoo.train.cifar import RestrictedUnpickler, find_cifar_folder, load_cifar_arrays, safe_unpickle  # noqa: F401
from bnnzoo.train.folders import load_imagefolder
from bnnzoo.train.idx import load_fashion_mnist_arrays, read_idx  # noqa: F401 (re-exported)

SPLITS = ("train", "test")
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
        return load_imagefolder(_resolve_root(name, root), split, image_size, augment, limit)
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
            f"expected layout: {LAYOUT_HELP[name]}. bnnzoo never downloads datasets."
        )
    return Path(root).expanduser()
