"""Tests for bnnzoo.train.data: local dataset loading, safe CIFAR unpickling, loaders and splits."""

from __future__ import annotations

import builtins
import gzip
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bnnzoo.errors import DataError
from bnnzoo.train.data import (
    DATASETS,
    DEFAULT_FASHION_MNIST_ROOT,
    dataset_info,
    load_dataset,
    make_loader,
    split_train_val,
    synthetic_dataset,
)

FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
needs_fashion = pytest.mark.skipif(
    not all((DEFAULT_FASHION_MNIST_ROOT / name).is_file() for name in FASHION_FILES),
    reason="apt-get install dataset-fashion-mnist",
)


@pytest.fixture(autouse=True)
def _no_root_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("BNNZOO_FASHION_MNIST", "BNNZOO_CIFAR10", "BNNZOO_CIFAR100", "BNNZOO_IMAGEFOLDER"):
        monkeypatch.delenv(var, raising=False)


# --------------------------------------------------------------------------- dataset names


def test_dataset_info_of_every_dataset() -> None:
    for name in DATASETS:
        info = dataset_info(name)
        assert info.name == name
        assert len(info.mean) == len(info.std) == info.input_shape[0]
    assert dataset_info("fashion_mnist").mean == (0.2860,)
    assert dataset_info("cifar100").num_classes == 100


@pytest.mark.parametrize(("typo", "suggestion"), [("fashion-mnist", "fashion_mnist"), ("cifar-10", "cifar10")])
def test_unknown_dataset_suggests_a_name(typo: str, suggestion: str) -> None:
    with pytest.raises(DataError, match=f"did you mean '{suggestion}'"):
        dataset_info(typo)
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset(typo)


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(DataError, match="did you mean 'test'"):
        load_dataset("synthetic", "tset")


# --------------------------------------------------------------------------- Fashion-MNIST


@needs_fashion
def test_fashion_mnist_train_and_test_load() -> None:
    train = load_dataset("fashion_mnist", "train")
    test = load_dataset("fashion_mnist", "test")
    assert (len(train), len(test)) == (60000, 10000)
    image, label = train[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert isinstance(label, int)
    for dataset in (train, test):
        assert set(dataset.labels.unique().tolist()) == set(range(10))


@needs_fashion
def test_fashion_mnist_pixels_match_the_raw_idx_bytes() -> None:
    index = 1234
    raw_images = gzip.decompress((DEFAULT_FASHION_MNIST_ROOT / "t10k-images-idx3-ubyte.gz").read_bytes())
    raw_labels = gzip.decompress((DEFAULT_FASHION_MNIST_ROOT / "t10k-labels-idx1-ubyte.gz").read_bytes())
    expected = np.frombuffer(raw_images, np.uint8, count=784, offset=16 + index * 784).reshape(28, 28)
    dataset = load_dataset("fashion_mnist", "test")
    assert np.array_equal(dataset.images[index, 0].numpy(), expected)
    image, label = dataset[index]
    assert label == raw_labels[8 + index]
    normalised = (torch.from_numpy(expected.astype(np.float32)) / 255 - 0.2860) / 0.3530
    assert torch.allclose(image[0], normalised, atol=1e-6)


@needs_fashion
def test_fashion_mnist_image_size_32_pads_two_pixels() -> None:
    plain = load_dataset("fashion_mnist", "test", limit=3)
    padded = load_dataset("fashion_mnist", "test", image_size=32, limit=3)
    assert len(padded) == 3
    image, _ = padded[1]
    assert image.shape == (1, 32, 32)
    assert torch.equal(image[:, 2:30, 2:30], plain[1][0])
    background = (0.0 - 0.2860) / 0.3530
    assert torch.allclose(image[:, :2], torch.full_like(image[:, :2], background))


@needs_fashion
def test_fashion_mnist_augment_keeps_shape_and_plain_is_deterministic() -> None:
    plain = load_dataset("fashion_mnist", "test", image_size=32, limit=4)
    again = load_dataset("fashion_mnist", "test", image_size=32, limit=4)
    assert all(torch.equal(plain[2][0], again[2][0]) for _ in range(3))  # every access, every load
    torch.manual_seed(0)
    augmented = load_dataset("fashion_mnist", "test", image_size=32, augment=True, limit=4)
    draws = [augmented[2][0] for _ in range(8)]
    assert all(draw.shape == (1, 32, 32) for draw in draws)
    assert sum(not torch.equal(draw, plain[2][0]) for draw in draws) >= 1  # random crops and flips move it


def _fashion_copy(tmp_path: Path) -> Path:
    for name in FASHION_FILES[2:]:
        shutil.copy(DEFAULT_FASHION_MNIST_ROOT / name, tmp_path / name)
    return tmp_path


@needs_fashion
def test_truncated_gzip_names_the_file(tmp_path: Path) -> None:
    root = _fashion_copy(tmp_path)
    images = root / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:100_000])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz"):
        load_dataset("fashion_mnist", "test", root=root)


@needs_fashion
def test_truncated_idx_payload_names_the_file(tmp_path: Path) -> None:
    root = _fashion_copy(tmp_path)
    labels = root / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(gzip.decompress(labels.read_bytes())[:500]))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*truncated"):
        load_dataset("fashion_mnist", "test", root=root)


@needs_fashion
def test_wrong_idx_magic_is_rejected(tmp_path: Path) -> None:
    root = _fashion_copy(tmp_path)
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + bytes(20)))
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte.gz.*magic"):
        load_dataset("fashion_mnist", "test", root=root)


def test_missing_fashion_mnist_root_mentions_apt_get(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion_mnist", root=missing)
    assert str(missing) in str(info.value)


def test_fashion_mnist_root_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BNNZOO_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match=str(tmp_path)):
        load_dataset("fashion_mnist")


# --------------------------------------------------------------------------- CIFAR


def _cifar_batch(count: int, seed: int, label_key: bytes = b"labels", classes: int = 10) -> dict:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": f"batch {seed}".encode(),
        label_key: rng.integers(0, classes, count).tolist(),
        b"data": rng.integers(0, 256, (count, 3072), dtype=np.uint8),
        b"filenames": [f"{seed}_{i}.png".encode() for i in range(count)],
    }


def _write_pickle(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=2))


def _make_cifar10_python(root: Path, count: int = 4) -> dict[str, dict]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {f"data_batch_{i}": _cifar_batch(count, i) for i in range(1, 6)}
    batches["test_batch"] = _cifar_batch(count, 99)
    for name, batch in batches.items():
        _write_pickle(folder / name, batch)
    return batches


def test_cifar10_python_layout_loads(tmp_path: Path) -> None:
    batches = _make_cifar10_python(tmp_path)
    train = load_dataset("cifar10", "train", root=tmp_path)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert (len(train), len(test)) == (20, 4)
    first = batches["data_batch_1"]
    assert np.array_equal(train.images[0].numpy().reshape(-1), first[b"data"][0])
    assert train.labels[:4].tolist() == first[b"labels"]
    assert test.labels.tolist() == batches["test_batch"][b"labels"]
    image, _ = test[0]
    assert image.shape == (3, 32, 32)
    assert load_dataset("cifar10", "train", root=tmp_path, image_size=40)[0][0].shape == (3, 40, 40)


def test_cifar10_root_may_be_the_inner_folder(tmp_path: Path) -> None:
    _make_cifar10_python(tmp_path)
    assert len(load_dataset("cifar10", "test", root=tmp_path / "cifar-10-batches-py")) == 4


def test_cifar_pickle_with_numpy1_module_names_loads(tmp_path: Path) -> None:
    """The published batches were pickled by numpy 1 (``numpy.core.multiarray``)."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = _cifar_batch(3, 7)
    blob = pickle.dumps(batch, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in blob
    (folder / "test_batch").write_bytes(blob)
    assert load_dataset("cifar10", "test", root=tmp_path).labels.tolist() == batch[b"labels"]


def test_cifar100_python_layout_loads(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name in ("train", "test"):
        batch = _cifar_batch(5, len(name), b"fine_labels", classes=100)
        batch[b"coarse_labels"] = [0] * 5
        _write_pickle(folder / name, batch)
    dataset = load_dataset("cifar100", "train", root=tmp_path, limit=2)
    assert len(dataset) == 2 and dataset.num_classes == 100


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


class _EvilExec(_Evil):
    def __reduce__(self) -> tuple:
        return builtins.exec, (f"open({str(self.marker)!r}, 'w').close()",)


@pytest.mark.parametrize("evil", [_Evil, _EvilExec])
def test_malicious_pickle_is_refused_and_not_run(tmp_path: Path, evil: type[_Evil]) -> None:
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    _write_pickle(folder / "test_batch", {b"data": evil(marker), b"labels": [0]})
    with pytest.raises(DataError, match="test_batch.*refusing to load"):
        load_dataset("cifar10", "test", root=tmp_path)
    assert not marker.exists()


def test_truncated_cifar_pickle_names_the_file(tmp_path: Path) -> None:
    _make_cifar10_python(tmp_path)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="data_batch_3"):
        load_dataset("cifar10", "train", root=tmp_path)


def test_cifar_batch_with_wrong_contents_is_rejected(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    _write_pickle(folder / "test_batch", {b"data": np.zeros((2, 10), np.uint8), b"labels": [0, 1]})
    with pytest.raises(DataError, match="uint8 array of shape"):
        load_dataset("cifar10", "test", root=tmp_path)


def _write_cifar_bin(path: Path, labels: list[int], seed: int) -> np.ndarray:
    pixels = np.random.default_rng(seed).integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    records = np.concatenate([np.array(labels, np.uint8)[:, None], pixels], axis=1)
    path.write_bytes(records.tobytes())
    return pixels


def test_cifar10_binary_layout_loads(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    for i in range(1, 6):
        _write_cifar_bin(folder / f"data_batch_{i}.bin", [i, 0], seed=i)
    pixels = _write_cifar_bin(folder / "test_batch.bin", [3, 1, 4], seed=0)
    test = load_dataset("cifar10", "test", root=tmp_path)
    assert test.labels.tolist() == [3, 1, 4]
    assert np.array_equal(test.images.numpy().reshape(3, -1), pixels)
    assert len(load_dataset("cifar10", "train", root=folder)) == 10


def test_truncated_cifar_binary_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    _write_cifar_bin(folder / "test_batch.bin", [1, 2], seed=0)
    (folder / "test_batch.bin").write_bytes((folder / "test_batch.bin").read_bytes()[:-7])
    with pytest.raises(DataError, match="test_batch.bin.*not a multiple"):
        load_dataset("cifar10", "test", root=tmp_path)


def test_wrong_cifar_path_explains_the_layout(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-10-batches-py") as info:
        load_dataset("cifar10", root=tmp_path)
    assert str(tmp_path) in str(info.value) and "cifar-10-batches-bin" in str(info.value)
    with pytest.raises(DataError, match="cifar-100-python"):
        load_dataset("cifar100", root=tmp_path)
    with pytest.raises(DataError, match="--data-root"):
        load_dataset("cifar10")


def test_missing_cifar_training_batch_is_named(tmp_path: Path) -> None:
    _make_cifar10_python(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_4").unlink()
    with pytest.raises(DataError, match="data_batch_4 is missing"):
        load_dataset("cifar10", "train", root=tmp_path)


# --------------------------------------------------------------------------- image folders


def _make_imagefolder(root: Path) -> None:
    from PIL import Image

    for split in ("train", "val"):
        for index, name in enumerate(("cat", "dog")):
            folder = root / split / name
            folder.mkdir(parents=True)
            for k in range(2):
                Image.new("RGB", (10, 8), (40 * index + k, 100, 200)).save(folder / f"{k}.png")


def test_imagefolder_loads_train_and_val(tmp_path: Path) -> None:
    _make_imagefolder(tmp_path)
    train = load_dataset("imagefolder", "train", root=tmp_path, image_size=16)
    test = load_dataset("imagefolder", "test", root=tmp_path, image_size=16, limit=3)
    assert (len(train), len(test)) == (4, 3)
    assert train.classes == ["cat", "dog"]
    image, label = train[3]
    assert image.shape == (3, 16, 16) and label == 1


def test_imagefolder_without_classes_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="is not a folder"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="no class folders"):
        load_dataset("imagefolder", root=tmp_path)
    (tmp_path / "train" / "cat").mkdir()
    with pytest.raises(DataError, match="imagefolder"):
        load_dataset("imagefolder", root=tmp_path)


# --------------------------------------------------------------------------- synthetic, loaders, splits


def test_synthetic_is_deterministic_per_seed_and_split() -> None:
    first = load_dataset("synthetic", limit=8, seed=3)
    again = load_dataset("synthetic", limit=8, seed=3)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    assert not torch.equal(first.images, load_dataset("synthetic", "test", limit=8, seed=3).images)
    custom = synthetic_dataset(5, (1, 12, 12), 4, seed=1)
    assert custom[0][0].shape == (1, 12, 12) and int(custom.labels.max()) < 4


def test_split_train_val_is_deterministic_and_disjoint() -> None:
    dataset = synthetic_dataset(50)
    train, val = split_train_val(dataset, 0.3, seed=5)
    train2, val2 = split_train_val(dataset, 0.3, seed=5)
    assert list(train.indices) == list(train2.indices) and list(val.indices) == list(val2.indices)
    assert (len(train), len(val)) == (35, 15)
    assert set(train.indices).isdisjoint(val.indices)
    assert set(train.indices) | set(val.indices) == set(range(50))
    assert list(split_train_val(dataset, 0.3, seed=6)[1].indices) != list(val.indices)
    with pytest.raises(DataError):
        split_train_val(dataset, 1.0)


def _label_order(seed: int) -> list[int]:
    dataset = synthetic_dataset(40, (1, 4, 4), 1000, seed=0)
    loader = make_loader(dataset, 8, shuffle=True, seed=seed)
    return [label for _, labels in loader for label in labels.tolist()]


def test_make_loader_same_seed_same_order() -> None:
    assert _label_order(11) == _label_order(11)
    assert _label_order(11) != _label_order(12)
    loader = make_loader(synthetic_dataset(10), 4, shuffle=False, drop_last=True)
    batches = list(loader)
    assert len(batches) == 2 and batches[0][0].shape == (4, 3, 32, 32)
    with pytest.raises(DataError):
        make_loader(synthetic_dataset(4), 0, shuffle=False)
