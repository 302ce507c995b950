"""scripts/train_zoo.py at its tiny CPU size: train, export, measure, return <= 8 files, ship."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch

from bnnzoo.export import load_packed
from bnnzoo.train.data import load_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "train_zoo.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def test_tiny_run_returns_few_files_and_ships(tmp_path) -> None:
    out = tmp_path / "out"
    _run("train", "mbconv_a", "--tiny", "--work", str(tmp_path / "work"), "--out", str(out))
    files = sorted(out.iterdir())
    assert [f.name for f in files] == ["results.json", "weights-1.tar"]
    assert all(f.stat().st_size <= 16 * 1024 * 1024 for f in files)
    (entry,) = json.loads((out / "results.json").read_text())["tags"]
    assert entry["tag"] == "mbconv_a.fashion_mnist" and entry["input_size"] == [1, 32, 32]
    assert entry["accuracy"]["test_images"] == 64 and entry["accuracy"]["first_images"] == 64
    assert entry["recipe"]["two_step"] and entry["recipe"]["epochs"] == 2
    assert entry["train_images_seen"] == 2 * 2 * 16
    assert entry["op_counts"]["input_size"] == [1, 32, 32] and entry["op_counts"]["bops_g"] > 0.5
    assert "Tiny CI run" in entry["card"] and entry["sha256"] in entry["card"]
    with tarfile.open(out / "weights-1.tar") as tar:
        assert tar.getnames() == ["mbconv_a.fashion_mnist.safetensors"]

    repo = tmp_path / "repo"
    (repo / "bnnzoo" / "weights").mkdir(parents=True)
    (repo / "bnnzoo" / "weights" / "manifest.json").write_text(json.dumps({"format": "bnnzoo.weights/1", "tags": {}}))
    shipped = _run("ship", str(out), "--repo", str(repo))
    assert shipped.stdout.startswith("| `mbconv_a.fashion_mnist` |")
    manifest = json.loads((repo / "bnnzoo" / "weights" / "manifest.json").read_text())["tags"]
    assert manifest["mbconv_a.fashion_mnist"]["sha256"] == entry["sha256"]
    assert (repo / "docs" / "model_cards" / "mbconv_a.fashion_mnist.md").read_text() == entry["card"]
    assert "machine load: 1-minute load average" in entry["card"]
    golden = json.loads((repo / "bnnzoo" / "weights" / "mbconv_a.fashion_mnist.golden.json").read_text())
    model = load_packed(repo / "bnnzoo" / "weights" / "mbconv_a.fashion_mnist.safetensors")
    test = load_dataset("fashion_mnist", "test", image_size=32, limit=len(golden["labels"]))
    with torch.no_grad():
        logits = model(torch.stack([test[i][0] for i in range(len(test))]))
    assert torch.equal(logits, torch.tensor(golden["logits"]))
