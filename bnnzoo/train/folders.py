"""ImageNet-style image folders (``ROOT/train/<class>/*``, ``ROOT/val/<class>/*``) through torchvision."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from bnnzoo._datasets import IMAGENET_MEAN, IMAGENET_STD, LAYOUT_HELP, dataset_info
from bnnzoo.errors import DataError

# --------------------------------------------------------------------------- image folders


def load_imagefolder(root: Path, split: str, image_size: int | None, augment: bool, limit: int | None) -> Dataset[Any]:
    """The ``split`` of an image folder, resized (or randomly cropped with ``augment``) and ImageNet-normalised."""
    from torchvision import datasets, transforms

    folder = root / ("train" if split == "train" else "val")
    if not folder.is_dir():
        raise DataError(f"imagefolder: {folder} is not a folder; expected {LAYOUT_HELP['imagefolder']}")
    if not any(child.is_dir() for child in folder.iterdir()):
        raise DataError(f"imagefolder: {folder} has no class folders; expected {LAYOUT_HELP['imagefolder']}")
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
