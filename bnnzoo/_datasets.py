"""Static facts about the datasets bnnzoo knows: class count, image shape, normalisation, test split size.

The one home of these numbers, below every consumer: training reads the data with them
(:mod:`bnnzoo.train.data`), the zoo's untrained configs and the Hub's configs and cards quote them.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bnnzoo.errors import DataError

__all__ = [
    "DATASETS",
    "DEFAULT_FASHION_MNIST_ROOT",
    "LAYOUT_HELP",
    "ROOT_ENV_VARS",
    "DatasetInfo",
    "choice_hint",
    "dataset_info",
]

DATASETS = ("fashion_mnist", "cifar10", "cifar100", "imagefolder", "synthetic")
DEFAULT_FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")
ROOT_ENV_VARS = {
    "fashion_mnist": "BNNZOO_FASHION_MNIST",
    "cifar10": "BNNZOO_CIFAR10",
    "cifar100": "BNNZOO_CIFAR100",
    "imagefolder": "BNNZOO_IMAGEFOLDER",
}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: class count, image shape (C, H, W), normalisation and the size
    of its test split, where that is fixed."""

    name: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_images: int | None = None


_INFOS = {
    "fashion_mnist": DatasetInfo("fashion_mnist", 10, (1, 28, 28), (0.2860,), (0.3530,), 10_000),
    "cifar10": DatasetInfo("cifar10", 10, (3, 32, 32), (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 10_000),
    "cifar100": DatasetInfo("cifar100", 100, (3, 32, 32), (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 10_000),
    "imagefolder": DatasetInfo("imagefolder", 1000, (3, 224, 224), IMAGENET_MEAN, IMAGENET_STD),
    # Uniform random bytes: mean 0.5, std 1/sqrt(12) after scaling to [0, 1].
    "synthetic": DatasetInfo("synthetic", 10, (3, 32, 32), (0.5,) * 3, (0.2887,) * 3),
}


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; an unknown name raises DataError with a suggestion."""
    info = _INFOS.get(name)
    if info is None:
        raise DataError(f"unknown dataset {name!r}{choice_hint(name, DATASETS)}")
    return info


def choice_hint(word: str, choices: Sequence[str]) -> str:
    """``; did you mean 'x'? (choose from ...)`` for an unknown ``word``."""
    close = difflib.get_close_matches(str(word), choices, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (choose from {', '.join(choices)})"


# Where each dataset's files are expected (every 'not found' message quotes it).
LAYOUT_HELP = {
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
