"""Zoo weights shipped inside the package (bnnzoo/weights/): offline loading, golden logits,
accuracy against the card, the sha256 check, and the packed-file loading path through timm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import timm
import torch
from tiny import genotype_text, trained

import bnnzoo
from bnnzoo import weights
from bnnzoo.errors import WeightsError
from bnnzoo.export import PackedBinaryConv2d, export_packed, load_packed
from bnnzoo.train.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]
TAGS = sorted(weights.manifest())
TINY = genotype_text(
    "tiny_ship",
    "mbconv",
    "layers {\n  MB3(2) 16 s2\n  skip\n  MB5(1) 24\n}\n",
    input="1x16x16",
)


@pytest.fixture
def offline(monkeypatch):
    """No network: the Hub is unreachable, so anything loaded comes from the package."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")


def _golden_batch(tag: str) -> tuple[torch.Tensor, torch.Tensor]:
    golden = weights.golden(tag)
    test = load_dataset("fashion_mnist", "test", image_size=32, limit=len(golden["labels"]))
    images = torch.stack([test[i][0] for i in range(len(test))])
    assert [test[i][1] for i in range(len(test))] == golden["labels"]
    return images, torch.tensor(golden["logits"])


def test_something_ships() -> None:
    assert TAGS, "bnnzoo/weights/manifest.json lists no tag"
    for tag in TAGS:
        assert tag in bnnzoo.list_models(pretrained=True)
        assert tag.split(".")[0] in bnnzoo.list_models()


@pytest.mark.parametrize("tag", TAGS)
def test_shipped_tag_loads_offline_and_matches_golden_logits(tag, offline) -> None:
    entry = weights.manifest()[tag]
    model = bnnzoo.create_model(tag, pretrained=True).eval()
    via_timm = timm.create_model(tag, pretrained=True).eval()
    packed = load_packed(weights.shipped_path(tag))
    cfg = model.pretrained_cfg
    assert cfg["file"] == str(weights.shipped_path(tag))
    assert cfg["input_size"] == (1, 32, 32) == tuple(entry["input_size"])
    assert cfg["mean"] == tuple(entry["mean"]) and cfg["std"] == tuple(entry["std"])
    assert cfg["num_classes"] == 10 and len(cfg["label_names"]) == 10
    assert model.in_chans == 1 and model.num_classes == 10
    assert any(isinstance(m, PackedBinaryConv2d) for m in model.modules())
    images, golden = _golden_batch(tag)
    with torch.no_grad():
        logits = model(images)
        # Bit-exact: both create paths and load_packed give the same floats.
        assert torch.equal(logits, via_timm(images))
        assert torch.equal(logits, packed(images))
    assert torch.equal(logits.argmax(1), golden.argmax(1))
    torch.testing.assert_close(logits, golden, rtol=1e-5, atol=1e-5)  # stored as JSON floats


@pytest.mark.parametrize("tag", TAGS)
def test_untagged_pretrained_loads_the_shipped_tag(tag, offline) -> None:
    name = tag.split(".")[0]
    if weights.shipped_cfgs(name) and list(weights.shipped_cfgs(name))[0] != tag.split(".", 1)[1]:
        pytest.skip("not the model's first trained tag")
    model = bnnzoo.create_model(name, pretrained=True)
    assert model.pretrained_cfg["tag"] == tag.split(".", 1)[1]
    assert timm.create_model(name, pretrained=True).pretrained_cfg["tag"] == tag.split(".", 1)[1]
    # Untrained, the zoo name keeps its genotype's own input shape (Table 3's CIFAR models: 3 channels).
    assert bnnzoo.create_model(name).in_chans == bnnzoo.zoo.models.zoo_genotype(name).input_shape[0]


@pytest.mark.slow
@pytest.mark.parametrize("tag", TAGS)
def test_shipped_tag_top1_on_first_1000_matches_card(tag, offline) -> None:
    accuracy = weights.manifest()[tag]["accuracy"]
    assert accuracy["test_images"] == 10_000 and accuracy["first_images"] == 1000
    model = bnnzoo.create_model(tag, pretrained=True).eval()
    test = load_dataset("fashion_mnist", "test", image_size=32, limit=1000)
    hits = 0
    with torch.no_grad():
        for start in range(0, 1000, 250):
            items = [test[i] for i in range(start, start + 250)]
            images = torch.stack([image for image, _ in items])
            labels = torch.tensor([label for _, label in items])
            hits += int(model(images).argmax(1).eq(labels).sum())
    assert abs(hits / 10 - accuracy["top1_first"]) <= 1.0
    card = (ROOT / "docs" / "model_cards" / f"{tag}.md").read_text()
    assert f"{accuracy['top1']:.2f}%" in card and f"{accuracy['top1_first']:.2f}%" in card


@pytest.mark.parametrize("tag", TAGS)
def test_readme_and_card_list_the_shipped_figures(tag) -> None:
    entry = weights.manifest()[tag]
    readme = (ROOT / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith(f"| `{tag}` |"))
    assert f"{entry['accuracy']['top1']:.2f}%" in row and f"{entry['accuracy']['top5']:.2f}%" in row
    card = (ROOT / entry["card"]).read_text()
    assert entry["sha256"] in card and "1x32x32" in card


def test_readme_pretrained_table_lists_exactly_the_shipped_tags() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("### Pretrained weights", 1)[1].split("\n### ", 1)[0]
    listed = sorted(line.split("`")[1] for line in section.splitlines() if line.startswith("| `"))
    assert listed == TAGS


def test_shipped_files_match_manifest_and_fit_the_bound() -> None:
    total = 0
    for tag, entry in weights.manifest().items():
        path = weights.shipped_path(tag)
        assert path.stat().st_size == entry["bytes"]
        weights.verify(path)  # raises on a mismatch
        total += entry["bytes"]
    assert total <= 40e6


# -- the mechanism, on a tiny packed file of our own ---------------------------------------------


def _tiny_packed(tmp_path: Path) -> tuple[torch.nn.Module, Path]:
    model = trained(TINY, num_classes=10, in_chans=1)
    return model, export_packed(model, tmp_path / "tiny_ship.fashion_mnist.safetensors")


def test_timm_file_key_loads_a_packed_file_bit_exactly(tmp_path, offline) -> None:
    model, path = _tiny_packed(tmp_path)
    overlay = {"file": str(path), "input_size": (1, 16, 16), "num_classes": 10}
    loaded = timm.create_model("bnnzoo_genotype", genotype=TINY, pretrained=True, pretrained_cfg_overlay=overlay)
    x = torch.randn(4, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), model(x))
        assert torch.equal(loaded(x), load_packed(path)(x))
    # num_classes= still builds a fresh classifier, as for any timm model.
    five = timm.create_model(
        "bnnzoo_genotype", genotype=TINY, pretrained=True, pretrained_cfg_overlay=overlay, num_classes=5
    )
    assert five.num_classes == 5 and torch.equal(five.stem.conv.weight, loaded.stem.conv.weight)


def test_packed_file_of_another_genotype_is_refused(tmp_path, offline) -> None:
    _, path = _tiny_packed(tmp_path)
    other = TINY.replace("MB5(1) 24", "MB5(1) 32")
    overlay = {"file": str(path), "input_size": (1, 16, 16), "num_classes": 10}
    with pytest.raises(WeightsError, match="another genotype"):
        timm.create_model("bnnzoo_genotype", genotype=other, pretrained=True, pretrained_cfg_overlay=overlay)


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A weights folder of our own (one tiny tag) standing in for the package's."""
    folder = tmp_path / "weights"
    folder.mkdir()
    _, path = _tiny_packed(folder)
    entry = {"file": path.name, "sha256": weights._sha256(path), "bytes": path.stat().st_size}
    manifest = {"format": weights.MANIFEST_FORMAT, "tags": {"tiny_ship.fashion_mnist": entry}}
    (folder / weights.MANIFEST_NAME).write_text(json.dumps(manifest))
    monkeypatch.setattr(weights, "weights_dir", lambda: folder)
    weights.manifest.cache_clear()
    yield path
    weights.manifest.cache_clear()


def test_a_corrupted_shipped_file_fails_its_sha256(shipped_copy, offline) -> None:
    weights.verify(shipped_copy)
    data = bytearray(shipped_copy.read_bytes())
    data[-1] ^= 0x01  # one bit of the last tensor
    shipped_copy.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"sha256 mismatch \(expected [0-9a-f]{64}, found [0-9a-f]{64}\).*reinstall"):
        weights.verify(shipped_copy)
    overlay = {"file": str(shipped_copy), "input_size": (1, 16, 16), "num_classes": 10}
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        bnnzoo.zoo.models.bnnzoo_genotype(pretrained=True, genotype=TINY, pretrained_cfg_overlay=overlay)
    shipped_copy.unlink()
    with pytest.raises(WeightsError, match="missing; reinstall"):
        weights.verify(shipped_copy)


def test_a_file_we_did_not_ship_is_not_checked(tmp_path, shipped_copy) -> None:
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.copy(shipped_copy, elsewhere)
    elsewhere.write_bytes(elsewhere.read_bytes()[:-1] + b"\x00")
    weights.verify(elsewhere)  # user files carry no sha256 of ours
