"""The parts of timm's model contract that timm's own suite (tests/timm_conformance) checks, asserted
here on tiny models: construction on a device and dtype, ``pool_size``, ``reset_classifier`` keeping
device, dtype and train/eval mode, ``prune_intermediate_layers``, FX tracing, and TorchScript's
clear refusal."""

from __future__ import annotations

import copy

import pytest
import timm
import torch
import torch.fx
from timm.models import get_notrace_modules
from timm.models._features_fx import create_feature_extractor
from tiny import TWO_CELLS, genotype_text

import bnnzoo
from bnnzoo.build.binary import BinaryConv2d, RSign
from bnnzoo.build.network import BinaryNet
from bnnzoo.errors import ModelError
from bnnzoo.zoo.models import pool_size

LAYERS = genotype_text(
    "contract_layers",
    "resnet",
    "layers {\n  basic(binary) 8\n  basic(real) 16 s2\n  basic(binary) 16\n  basic(binary) 24 s2\n}\n",
    input="1x20x20",
)
CELLS = genotype_text(
    "contract_cells",
    "bnas",
    "layers 4\nchannels 4\nreductions 1 3\n" + TWO_CELLS,
    stem="conv3x3 8 s2",
)
TEXTS = {"layers": LAYERS, "cells": CELLS}


def _model(kind: str, **kwargs) -> BinaryNet:
    torch.manual_seed(0)
    return bnnzoo.create_model(bnnzoo.parse(TEXTS[kind]), **kwargs)


def _input(model: BinaryNet, batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_built_on_the_requested_device_and_dtype(kind: str) -> None:
    model = _model(kind, device="meta", dtype=torch.float64)
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    assert {tensor.device.type for tensor in tensors.values()} == {"meta"}
    floats = {name: tensor.dtype for name, tensor in tensors.items() if tensor.is_floating_point()}
    assert set(floats.values()) == {torch.float64}
    counts = {name: tensor.dtype for name, tensor in tensors.items() if "num_batches_tracked" in name}
    assert counts and set(counts.values()) == {torch.int64}  # integer buffers keep their dtype


def test_device_and_dtype_reach_the_model_through_timm() -> None:
    model = timm.create_model("xnor_resnet18", device="meta", dtype=torch.bfloat16)
    assert next(model.parameters()).device.type == "meta"
    assert model.fc.weight.dtype == torch.bfloat16


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_pool_size_is_the_feature_map_at_the_input_size(kind: str) -> None:
    model = _model(kind).eval()
    with torch.no_grad():
        features = model.forward_features(_input(model))
    expected = {"layers": (5, 5), "cells": (2, 2)}[kind]  # 1x20x20 / 4 and 3x16x16 / 8
    assert tuple(features.shape[-2:]) == expected
    assert model.pretrained_cfg["pool_size"] == expected == pool_size(model.genotype)


def test_every_zoo_config_has_the_pool_size_of_its_genotype() -> None:
    for name in bnnzoo.list_models():
        model = timm.create_model(name, device="meta")
        features = model.forward_features(torch.empty(1, *model.pretrained_cfg["input_size"], device="meta"))
        assert tuple(features.shape[-2:]) == model.pretrained_cfg["pool_size"], name


@pytest.mark.parametrize("training", [True, False])
def test_reset_classifier_keeps_device_dtype_and_mode(training: bool) -> None:
    model = _model("layers").to(torch.float64).train(training)
    model.reset_classifier(5)
    assert (model.fc.out_features, model.fc.weight.dtype) == (5, torch.float64)
    model.reset_classifier(0, "")
    model.reset_classifier(3, "max")
    assert model.fc.weight.dtype == torch.float64 and model.global_pool.pool_type == "max"
    assert {module.training for module in model.modules()} == {training}
    meta = _model("layers", device="meta").train(training)
    meta.reset_classifier(7, "avg")
    assert meta.fc.weight.device.type == "meta"
    assert {module.training for module in meta.modules()} == {training}


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_prune_intermediate_layers_ends_the_features_at_the_tap(kind: str) -> None:
    model = _model(kind).eval()
    x = _input(model)
    with torch.no_grad():
        taps = model.forward_intermediates(x, intermediates_only=True)
    assert len(taps) == len(model.feature_info) == 4
    params = sum(p.numel() for p in model.parameters())
    for index in range(len(taps)):
        pruned = copy.deepcopy(model)
        assert pruned.prune_intermediate_layers([index]) == [index]
        assert pruned.num_classes == 0 and isinstance(pruned.fc, torch.nn.Identity)
        with torch.no_grad():
            assert torch.equal(pruned.forward_features(x), taps[index])
            assert torch.equal(pruned(x), taps[index])  # prune_head drops pooling too, as in timm
        kept = sum(p.numel() for p in pruned.parameters())
        assert kept < params
        pruned.train()
        pruned.forward_features(x).sum().backward()
        assert all(p.grad is not None for p in pruned.parameters()), "a pruned model has unused parameters"
    # The stem tap keeps no body block; the last tap keeps them all.
    stem_only = copy.deepcopy(model)
    stem_only.prune_intermediate_layers([0])
    assert len(getattr(stem_only.body, "cells" if kind == "cells" else "blocks")) == 0
    whole = copy.deepcopy(model)
    whole.prune_intermediate_layers([len(taps) - 1], prune_head=False)
    with torch.no_grad():
        assert torch.equal(whole(x), model(x))


def test_binary_layers_are_timm_leaf_modules() -> None:
    assert {BinaryConv2d, RSign} <= set(get_notrace_modules())


@pytest.mark.parametrize("kind", sorted(TEXTS))
def test_fx_traced_model_matches_eager_forward_and_backward(kind: str) -> None:
    model = _model(kind).eval()
    x = _input(model)
    # timm's FX feature extraction keeps the binary layers whole ...
    extractor = create_feature_extractor(model, return_nodes={"fc": "logits"})
    leaves = {node.target for node in extractor.graph.nodes if node.op == "call_module"}
    binary = {name for name, module in model.named_modules() if isinstance(module, BinaryConv2d)}
    assert binary and binary <= leaves
    with torch.no_grad():
        torch.testing.assert_close(extractor(x)["logits"], model(x), rtol=0, atol=0)
    # ... and, in train mode, gives every parameter a gradient.
    extractor = create_feature_extractor(model.train(), return_nodes={"fc": "logits"})
    out = extractor(x)["logits"]
    assert out.shape == (2, 10)
    out.mean().backward()
    missing = [name for name, p in extractor.named_parameters() if p.grad is None]
    assert not missing


def test_a_layer_list_model_traces_with_plain_torch_fx() -> None:
    model = _model("layers").eval()
    x = _input(model)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), model(x), rtol=0, atol=0)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_torchscript_raises_a_model_error() -> None:
    with pytest.raises(ModelError, match="cannot be compiled with TorchScript.*torch.compile"):
        torch.jit.script(_model("layers"))
    with pytest.raises(ModelError, match="BinaryConv2d cannot be compiled with TorchScript"):
        torch.jit.script(BinaryConv2d(4, 4, 3, padding=1))
