"""The local Hub server (tests/hub_server.py) serves real downloads to huggingface_hub and timm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import huggingface_hub
import pytest
from hub_server import hub_env
from huggingface_hub import constants, hf_hub_download
from huggingface_hub.errors import LocalEntryNotFoundError, RepositoryNotFoundError


def _make_folder(path, config, payload):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    (path / "weights.bin").write_bytes(payload)
    return path


def test_download_through_local_hub(local_hub, tmp_path):
    first = _make_folder(tmp_path / "first", {"architecture": "first"}, os.urandom(4096))
    local_hub.add_repo("bnnzoo-test/first", first)

    endpoint_before = constants.ENDPOINT  # https://huggingface.co unless HF_ENDPOINT was set
    with hub_env(local_hub, tmp_path / "hf") as hub_cache:
        assert huggingface_hub.hf_hub_url("bnnzoo-test/first", "config.json").startswith(local_hub.endpoint)
        for name in ("config.json", "weights.bin"):
            path = hf_hub_download("bnnzoo-test/first", name)
            assert path.startswith(str(hub_cache))
            assert Path(path).read_bytes() == (first / name).read_bytes()

        # A repository that does not exist yet: olah answers 401 ...
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download("bnnzoo-test/second", "config.json")
        # ... and does not remember it: once added, the running server serves it.
        second = _make_folder(tmp_path / "second", {"architecture": "second"}, b"\x00\x01" * 1000)
        sha = local_hub.add_repo("bnnzoo-test/second", second)
        path = hf_hub_download("bnnzoo-test/second", "config.json")
        assert json.loads(Path(path).read_text()) == {"architecture": "second"}
        assert f"/snapshots/{sha}/" in path
        assert sorted(huggingface_hub.list_repo_files("bnnzoo-test/second")) == ["config.json", "weights.bin"]

        # A new commit on an existing repository is served at once.
        (second / "config.json").write_text(json.dumps({"architecture": "second", "v": 2}))
        local_hub.add_repo("bnnzoo-test/second", second)
        path = hf_hub_download("bnnzoo-test/second", "config.json")
        assert json.loads(Path(path).read_text())["v"] == 2

    with hub_env(local_hub, tmp_path / "hf", offline=True):
        # Offline: cached files come from the cache, anything else fails at once with no request.
        assert hf_hub_download("bnnzoo-test/first", "weights.bin") == hf_hub_download(
            "bnnzoo-test/first", "weights.bin", local_files_only=True
        )
        start = time.monotonic()
        with pytest.raises(LocalEntryNotFoundError):
            hf_hub_download("bnnzoo-test/never-added", "config.json")
        assert time.monotonic() - start < 5

    # hub_env restored what it patched.
    assert endpoint_before == constants.ENDPOINT
    assert endpoint_before == huggingface_hub.hf_api.api.endpoint


def test_timm_create_model_from_local_hub(local_hub, tmp_path):
    torch = pytest.importorskip("torch")
    timm = pytest.importorskip("timm")

    model = timm.create_model("test_resnet", num_classes=7)
    folder = tmp_path / "timm-repo"
    # olah answers a missing file with 401, not 404, so timm cannot fall back from model.safetensors
    # to pytorch_model.bin: publish safetensors.
    timm.models.save_for_hf(model, folder, model_config={"num_classes": 7}, safe_serialization=True)
    local_hub.add_repo("bnnzoo-test/timm-tiny", folder)

    with hub_env(local_hub, tmp_path / "hf"):
        loaded = timm.create_model("hf-hub:bnnzoo-test/timm-tiny", pretrained=True)

    expected, got = model.state_dict(), loaded.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[k], got[k]) for k in expected)
