"""Downloaded repositories are checked before anything is built (golden tests of issue 12).

Each failure reproduced before the fix: ``num_classes: 30000000`` allocated 1.9-3.8 GB before failing;
an unknown ``model_args`` key, a bogus ``global_pool`` and an ``in_chans`` that does not match the
weights gave a raw TypeError, AssertionError and RuntimeError; a changed ``num_classes`` loaded with a
random classifier; an ``HF_ENDPOINT`` at a closed port took 23 s (huggingface_hub's retries).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hub_server import hub_env
from safetensors.torch import load_file, save_file
from tiny import trained

import bnnzoo
from bnnzoo.errors import HubError, ModelError, WeightsError
from bnnzoo.hub import create_from_hub, load_pretrained, read_config, stage_repo

MBCONV = """bnnzoo 1
name tiny_mb
space mbconv
input 3x16x16
classes 10
stem conv3x3 8
head avgpool fc

layers {
  MB3(2) 16 s2
  skip
  MB5(1) 16
}
"""


@pytest.fixture(scope="module")
def model():
    return trained(MBCONV, steps=3)


@pytest.fixture(scope="module")
def staged(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bounds") / "tiny"
    return stage_repo(model, folder, metrics={"top1": 0.4}, dataset="synthetic", repo_id="bnnzoo-test/tiny")


def variant(staged: Path, tmp_path: Path, edit=None, weights=None) -> Path:
    """A copy of the staged folder with ``edit(config)`` applied and/or ``weights(tensors)`` rewritten."""
    folder = shutil.copytree(staged, tmp_path / "variant")
    if edit is not None:
        config = json.loads((folder / "config.json").read_text())
        edit(config)
        (folder / "config.json").write_text(json.dumps(config))
    if weights is not None:
        tensors = load_file(folder / "model.safetensors")
        weights(tensors)
        save_file(tensors, folder / "model.safetensors")
    return folder


def same_outputs(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        return torch.equal(a.eval()(x), b.eval()(x))


def set_classes(value):
    def edit(config):
        config["num_classes"] = config["model_args"]["num_classes"] = value
        config["pretrained_cfg"]["num_classes"] = value

    return edit


# -- num_classes: 30000000 ------------------------------------------------------------------------


def test_huge_num_classes_fails_before_allocating(staged, tmp_path):
    """Under an address-space limit of 1 GiB above what the process holds, the 30-million-class
    classifier (1.9 GB) cannot be allocated: the load must fail with bnnzoo's error first."""
    folder = variant(staged, tmp_path, set_classes(30_000_000))
    script = textwrap.dedent(
        f"""
        import resource
        import bnnzoo, timm, torch
        from bnnzoo.errors import HubError
        size = int(next(l for l in open("/proc/self/status") if l.startswith("VmSize")).split()[1]) * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size + 2**30, resource.RLIM_INFINITY))
        try:
            bnnzoo.create_model("local-dir:{folder}", pretrained=True)
        except HubError as error:
            print("HubError:", error)
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == (
        f"HubError: {folder}/config.json: model_args.num_classes must be a whole number from 0 to 100000, "
        "got 30000000; fix config.json, or publish the model again with `bnnzoo publish`"
    )


@pytest.mark.parametrize(
    ("where", "shown"),
    [
        ("top", "num_classes"),
        ("model_args", "model_args.num_classes"),
        ("pretrained_cfg", "pretrained_cfg.num_classes"),
    ],
)
def test_each_num_classes_is_bounded(staged, tmp_path, where, shown):
    def edit(config):
        (config if where == "top" else config[where])["num_classes"] = 30_000_000

    folder = variant(staged, tmp_path, edit)
    with pytest.raises(HubError) as info:
        read_config(folder)
    assert str(info.value).startswith(f"{folder}/config.json: {shown} must be a whole number from 0 to 100000")


# -- raw exceptions before: TypeError, AssertionError, RuntimeError --------------------------------


def test_unknown_model_args_key(staged, tmp_path):
    folder = variant(staged, tmp_path, lambda c: c["model_args"].update(colour="red"))
    with pytest.raises(HubError) as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    assert str(info.value) == (
        f"{folder}/config.json: unknown model_args key(s) 'colour' (known: genotype, num_classes, in_chans, "
        "drop_rate, global_pool, shortcut); remove them from config.json"
    )


def test_bogus_global_pool(staged, tmp_path):
    folder = variant(staged, tmp_path, lambda c: c["model_args"].update(global_pool="bogus"))
    with pytest.raises(HubError, match=r"config\.json: model_args\.global_pool must be one of '', 'avg'") as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    assert str(info.value).endswith("got 'bogus'; fix config.json, or publish the model again with `bnnzoo publish`")


def test_in_chans_that_does_not_match_the_weights(staged, tmp_path):
    folder = variant(staged, tmp_path, lambda c: c["model_args"].update(in_chans=1))
    with pytest.raises(WeightsError) as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    assert str(info.value) == (
        f"{folder}/model.safetensors: the stem takes 3 input channels but {folder}/config.json declares 1 "
        "(model_args.in_chans, pretrained_cfg.input_size): fix them in config.json; pass in_chans= to adapt "
        "the stem to other inputs"
    )


def test_explicit_in_chans_still_adapts_the_stem(staged, tmp_path, model):
    loaded = load_pretrained(staged, in_chans=1)
    assert loaded.stem.conv.weight.shape[1] == 1
    assert torch.allclose(loaded.stem.conv.weight[:, 0], model.stem.conv.weight.sum(dim=1))


# -- a classifier re-initialised without asking ---------------------------------------------------


@pytest.mark.parametrize("where", ["model_args", "top"])
def test_changed_num_classes_is_an_error(staged, tmp_path, where):
    """model_args.num_classes=5 builds a 5-class model; a top-level num_classes=5 declares 5-class
    weights: either way timm would drop the 10-class classifier of the weights and start at random."""
    folder = variant(staged, tmp_path, lambda c: (c if where == "top" else c["model_args"]).update(num_classes=5))
    with pytest.raises(WeightsError) as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    message = str(info.value)
    assert message.startswith(f"{folder}/config.json: the classifier would be re-initialised at random")
    assert "pass num_classes=" in message and "explicitly to train a new classifier" in message


def test_explicit_num_classes_fine_tunes(staged, tmp_path, model):
    loaded = bnnzoo.create_model(f"local-dir:{staged}", pretrained=True, num_classes=5)
    assert loaded.fc.out_features == 5
    body = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in body.items())


def test_an_unchanged_repository_loads_exactly(staged, model):
    assert same_outputs(bnnzoo.create_model(f"local-dir:{staged}", pretrained=True), model)
    placed = bnnzoo.create_model(f"local-dir:{staged}", pretrained=True, device="cpu", dtype=torch.float32)
    assert same_outputs(placed, model)  # placement arguments pass through; the check builds on meta regardless


# -- every other config or weights problem is a bnnzoo error naming the file ----------------------

BAD_CONFIGS = {
    "foreign-architecture": (lambda c: c.update(architecture="resnet18"), "is not a bnnzoo model"),
    "model-args-list": (lambda c: c.update(model_args=[1]), "'model_args' must be an object"),
    "classes-string": (lambda c: c["model_args"].update(num_classes="10"), "got '10'"),
    "classes-bool": (lambda c: c["model_args"].update(num_classes=True), "got True"),
    "classes-negative": (lambda c: c["model_args"].update(num_classes=-1), "got -1"),
    "in-chans-zero": (lambda c: c["model_args"].update(in_chans=0), "in_chans must be a whole number from 1 to 64"),
    "in-chans-huge": (lambda c: c["model_args"].update(in_chans=10**6), "got 1000000"),
    "drop-rate": (lambda c: c["model_args"].update(drop_rate=2), "drop_rate must be a number"),
    "shortcut": (lambda c: c["model_args"].update(shortcut="zeros"), "shortcut must be one of"),
    "genotype-number": (lambda c: c["model_args"].update(genotype=3), "genotype must be the genotype text"),
    "no-genotype": (lambda c: c["model_args"].pop("genotype"), "needs model_args.genotype"),
    "pretrained-cfg-list": (lambda c: c.update(pretrained_cfg=[]), "'pretrained_cfg' must be an object"),
    "input-size-2d": (lambda c: c["pretrained_cfg"].update(input_size=[16, 16]), "must be [channels, height, width]"),
    "input-size-huge": (lambda c: c["pretrained_cfg"].update(input_size=[3, 10**5, 16]), "1..1024 pixels"),
    "pickle-file": (lambda c: c["pretrained_cfg"].update(hf_hub_filename="pytorch_model.bin"), "hf_hub_filename"),
    "url": (lambda c: c["pretrained_cfg"].update(url="http://example.invalid/w.pth"), "pretrained_cfg.url"),
    "custom-load": (lambda c: c["pretrained_cfg"].update(custom_load=True), "pretrained_cfg.custom_load"),
    "first-conv": (lambda c: c["pretrained_cfg"].update(first_conv="conv1"), "first_conv must be 'stem.conv'"),
    "classifier": (lambda c: c["pretrained_cfg"].update(classifier="head"), "classifier must be 'fc'"),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_bad_config_is_a_hub_error_naming_the_file(staged, tmp_path, case):
    edit, expected = BAD_CONFIGS[case]
    folder = variant(staged, tmp_path, edit)
    with pytest.raises(HubError) as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    assert str(info.value).startswith(f"{folder}/config.json: ")
    assert expected in str(info.value)


def test_an_oversized_config_is_refused_unread(staged, tmp_path):
    folder = variant(staged, tmp_path, lambda c: c.update(padding=" " * (1 << 20)))
    with pytest.raises(HubError, match=r"config\.json: \d+ bytes, over the 1048576 a model config may have"):
        read_config(folder)


def _drop(key):
    return lambda tensors: tensors.pop(key)


def _add(key):
    return lambda tensors: tensors.update({key: torch.zeros(2)})


def _reshape(key):
    return lambda tensors: tensors.update({key: torch.zeros(3, *tensors[key].shape[1:])})


BAD_WEIGHTS = {
    "missing": (_drop("body.blocks.0.expand.conv.weight"), "missing body.blocks.0.expand.conv.weight"),
    "unexpected": (_add("extra.weight"), "unexpected extra.weight"),
    "shape": (_reshape("body.blocks.0.expand.conv.weight"), "body.blocks.0.expand.conv.weight has shape (3,"),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS, ids=list(BAD_WEIGHTS))
def test_weights_that_do_not_fit_are_named(staged, tmp_path, case):
    change, expected = BAD_WEIGHTS[case]
    folder = variant(staged, tmp_path, weights=change)
    with pytest.raises(WeightsError) as info:
        bnnzoo.create_model(f"local-dir:{folder}", pretrained=True)
    message = str(info.value)
    assert message.startswith(f"{folder}/model.safetensors does not fit the model built from config.json: ")
    assert expected in message and "fix config.json or publish again" in message


def test_missing_tensor_is_an_error_even_with_a_new_classifier(staged, tmp_path):
    """timm loads non-strictly once it drops the classifier; a missing body tensor must not slip through."""
    folder = variant(staged, tmp_path, weights=_drop("body.blocks.0.expand.conv.weight"))
    with pytest.raises(WeightsError, match="missing body.blocks.0.expand.conv.weight"):
        load_pretrained(folder, num_classes=3)


def test_a_pooling_that_doubles_the_features_is_refused(staged, tmp_path):
    """catavgmax concatenates two poolings; the published classifier takes one."""
    folder = variant(staged, tmp_path, lambda c: c["model_args"].update(global_pool="catavgmax"))
    with pytest.raises(HubError, match=r"model_args\.global_pool must be one of .* got 'catavgmax'"):
        load_pretrained(folder)


def test_a_weights_file_with_a_garbage_header(staged, tmp_path):
    folder = variant(staged, tmp_path)
    (folder / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(
        WeightsError, match=r"model\.safetensors: not a valid safetensors file .*stage the folder again"
    ):
        load_pretrained(folder)


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"num_classes": 30_000_000}, "num_classes must be a whole number from 0 to 100000"),
        ({"global_pool": "bogus"}, "global_pool must be one of"),
        ({"pretrained_cfg_overlay": {"file": "/tmp/x.pth"}}, "cannot redirect the weights"),
    ],
)
def test_bad_arguments_are_model_errors(staged, kwargs, expected):
    with pytest.raises(ModelError, match=expected):
        bnnzoo.create_model(f"local-dir:{staged}", pretrained=True, **kwargs)


# -- an unreachable Hub fails fast -----------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_closed_port_fails_within_seconds(tmp_path):
    """huggingface_hub alone retries a refused connection for 23 s when the file is not cached."""
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    with hub_env(SimpleNamespace(endpoint=endpoint), tmp_path / "hf"):
        start = time.monotonic()
        with pytest.raises(HubError) as info:
            bnnzoo.create_model("hf-hub:bnnzoo-test/anything", pretrained=True)
        elapsed = time.monotonic() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"
    message = str(info.value)
    assert message.startswith(
        f"hf-hub:bnnzoo-test/anything (config.json): cannot reach the Hub at {endpoint} and the file is not in "
        "the local cache (ConnectError: "
    )
    assert message.endswith("check the network connection and HF_ENDPOINT")


def test_silent_server_fails_within_seconds(tmp_path):
    """A server that accepts the connection and never answers: the one probe times out."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        with hub_env(SimpleNamespace(endpoint=endpoint), tmp_path / "hf"):
            start = time.monotonic()
            with pytest.raises(HubError, match=r"cannot reach the Hub at .* \(ReadTimeout"):
                create_from_hub("hf-hub:bnnzoo-test/anything", pretrained=True)
            elapsed = time.monotonic() - start
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_cached_model_loads_while_the_hub_is_unreachable(local_hub, staged, model, tmp_path):
    import huggingface_hub.constants as constants

    local_hub.add_repo("bnnzoo-test/bounds-cached", staged)
    with hub_env(local_hub, tmp_path / "hf"):
        bnnzoo.create_model("hf-hub:bnnzoo-test/bounds-cached", pretrained=True)  # fills the cache
    with hub_env(SimpleNamespace(endpoint=f"http://127.0.0.1:{_closed_port()}"), tmp_path / "hf"):
        start = time.monotonic()
        loaded = bnnzoo.create_model("hf-hub:bnnzoo-test/bounds-cached", pretrained=True)
        assert time.monotonic() - start < 10
        assert constants.HF_HUB_OFFLINE is False  # the cache-only switch is put back
    assert same_outputs(loaded, model)
