"""Conformance of every zoo model to timm's model contract, modelled on timm's ``tests/test_models.py``.

Parametrized over ``bnnzoo.list_models()`` at collection time, so a genotype file added to ``genotypes/``
is covered without touching this file. Batches are small (2 images at the model's ``input_size``) and each
model's eval outputs are computed once and shared, so the tests not marked ``slow`` take about a minute on
two CPU cores for ten models; the ONNX export and ``torch.compile`` tests (``slow``) about as long again.
"""

from __future__ import annotations

import math
import shutil
import warnings
from types import SimpleNamespace

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from timm.models import FeatureInfo
from torch import nn

import bnnzoo
from bnnzoo.build.network import BinaryNet
from bnnzoo.build.shortcuts import SHORTCUT_KINDS, ReductionShortcut
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_path
from bnnzoo.errors import BnnzooError
from bnnzoo.zoo import pretrained_tags

MODELS = bnnzoo.list_models()
BATCH = 2

# A small MBConv genotype with stride-2 MB blocks (so it has reduction shortcuts): the shortcut override
# falls back to it when the zoo has no MBConv model, and the ONNX numeric check runs on it.
TINY_MBCONV = """\
bnnzoo 1
name tiny_mbconv
space mbconv
input 3x32x32
classes 10
stem conv3x3 16
head avgpool fc

layers {
  MB3(2) 16
  MB5(2) 24 s2
  skip
  MB3(1) 48 s2
}
"""

# The same network for 1x28x28 inputs and 7 classes: the genotype, not a default, sets both.
TINY_MBCONV_GRAY = TINY_MBCONV.replace("input 3x32x32", "input 1x28x28").replace("classes 10", "classes 7")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def _input(model: nn.Module, batch: int = BATCH) -> torch.Tensor:
    """A random batch at the model's ``pretrained_cfg`` input size."""
    return torch.randn(batch, *model.pretrained_cfg["input_size"])


def _spatial(size: int, reduction: int) -> int:
    # "Same" strided layers round up: ceil(ceil(n / a) / b) == ceil(n / (a * b)).
    return math.ceil(size / reduction)


def _shapes(model: nn.Module) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _mbconv_genotype() -> bnnzoo.Genotype:
    """A zoo MBConv genotype if the zoo has one, else :data:`TINY_MBCONV`."""
    for name in MODELS:
        genotype = zoo_genotype(name)
        if genotype.space == "mbconv":
            return genotype
    return bnnzoo.parse(TINY_MBCONV)


def _create(name: str, **kwargs) -> nn.Module:
    """``bnnzoo.create_model(name)`` with seeded weights: equal arguments give equal models."""
    torch.manual_seed(0)
    return bnnzoo.create_model(name, **kwargs)


@pytest.fixture(scope="module", params=MODELS)
def name(request) -> str:
    """Every zoo model. Module scope makes pytest run all the tests of one model together."""
    return request.param


@pytest.fixture(scope="module")
def run(name: str) -> SimpleNamespace:
    """One seeded model in eval mode, its input and its outputs, shared by the tests that only read them.

    Each model's forward runs once per file rather than once per test, and only one model is held at a
    time (the fixture is torn down before the next model's tests), which keeps the file fast and small.
    """
    model = _create(name).eval()
    x = _input(model)
    with torch.no_grad():
        logits = model(x)
        features = model.forward_features(x)
        final, intermediates = model.forward_intermediates(x)
    return SimpleNamespace(model=model, x=x, logits=logits, features=features, final=final, intermediates=intermediates)


def test_zoo_lists_every_genotype_file() -> None:
    from bnnzoo._resources import genotype_dir

    assert MODELS, "the zoo is empty"
    assert sorted(path.stem for path in genotype_dir().glob("*.bnn")) == MODELS
    for name in MODELS:
        assert timm.is_model(name)
        assert timm.list_models(name) == [name]


def test_model_forward(run: SimpleNamespace) -> None:
    assert run.logits.shape == (BATCH, run.model.num_classes)
    assert torch.isfinite(run.logits).all()


def test_model_backward(name: str) -> None:
    model = _create(name).train()
    x = _input(model)
    out = model(x)
    assert out.shape == (BATCH, model.num_classes)
    F.cross_entropy(out, torch.arange(BATCH) % model.num_classes).backward()

    params = [(key, p) for key, p in model.named_parameters() if p.requires_grad]
    missing = [key for key, p in params if p.grad is None]
    assert not missing, f"parameters without a gradient: {missing}"
    not_finite = [key for key, p in params if not torch.isfinite(p.grad).all()]
    assert not not_finite, f"non-finite gradients: {not_finite}"
    # Sign binarization and the clipped STE may zero a gradient legitimately, but not most of them.
    nonzero = sum(bool(p.grad.any()) for _, p in params)
    assert nonzero >= 0.9 * len(params), f"only {nonzero} of {len(params)} parameters have a nonzero grad"


def test_model_default_cfgs(name: str) -> None:
    model = bnnzoo.create_model(name)
    genotype = zoo_genotype(name)
    cfg = model.pretrained_cfg
    state_dict = model.state_dict()

    assert cfg["architecture"] == name
    assert tuple(cfg["input_size"]) == tuple(genotype.input_shape)
    assert cfg["num_classes"] == genotype.num_classes == model.num_classes
    assert model.in_chans == genotype.input_shape[0]
    assert len(cfg["mean"]) == len(cfg["std"]) == genotype.input_shape[0]
    assert model.num_features > 0 and model.head_hidden_size == model.num_features

    first_conv = cfg["first_conv"]
    for conv in (first_conv,) if isinstance(first_conv, str) else first_conv:
        assert conv + ".weight" in state_dict, f"first_conv {conv} not in the state dict"
        assert state_dict[conv + ".weight"].shape[1] == genotype.input_shape[0]
    classifier = cfg["classifier"]
    assert classifier + ".weight" in state_dict, f"classifier {classifier} not in the state dict"
    assert state_dict[classifier + ".weight"].shape == (genotype.num_classes, model.num_features)
    assert model.get_classifier() is model.get_submodule(classifier)

    data_cfg = timm.data.resolve_data_config({}, model=model)
    assert tuple(data_cfg["input_size"]) == tuple(genotype.input_shape)


def test_model_forward_features(run: SimpleNamespace) -> None:
    model = run.model
    height, width = run.x.shape[-2:]
    reduction = model.feature_info[-1]["reduction"]
    assert run.features.shape == (
        BATCH,
        model.num_features,
        _spatial(height, reduction),
        _spatial(width, reduction),
    )
    assert model.feature_info[-1]["num_chs"] == model.num_features
    with torch.no_grad():
        pre_logits = model.forward_head(run.features, pre_logits=True)
        logits = model.forward_head(run.features)
    assert pre_logits.shape == (BATCH, model.num_features)
    assert torch.isfinite(run.features).all() and torch.isfinite(pre_logits).all()
    assert torch.equal(logits, run.logits)


def test_model_forward_intermediates(run: SimpleNamespace) -> None:
    model = run.model
    info = FeatureInfo(model.feature_info, range(len(model.feature_info)))
    height, width = run.x.shape[-2:]
    assert len(run.intermediates) == len(model.feature_info) >= 2
    for channels, reduction, tensor in zip(info.channels(), info.reduction(), run.intermediates):
        assert tensor.shape == (BATCH, channels, _spatial(height, reduction), _spatial(width, reduction))
    assert torch.equal(run.final, run.features)
    # The first two taps only: intermediates_only stops early, after the second tap.
    with torch.no_grad():
        first_two = model.forward_intermediates(run.x, indices=[0, 1], intermediates_only=True)
    assert len(first_two) == 2
    for got, want in zip(first_two, run.intermediates[:2]):
        assert torch.equal(got, want)


def test_model_reset_classifier(name: str, run: SimpleNamespace) -> None:
    model = _create(name).eval()
    classifier = model.get_classifier()
    assert isinstance(classifier, nn.Linear)
    assert (classifier.in_features, classifier.out_features) == (model.num_features, model.num_classes)

    model.reset_classifier(0)
    assert model.num_classes == 0
    assert isinstance(model.get_classifier(), nn.Identity)
    with torch.no_grad():
        pre_logits = model(run.x)
        assert pre_logits.shape == (BATCH, model.num_features)
        assert torch.equal(pre_logits, model.forward_head(run.features, pre_logits=True))

        model.reset_classifier(7)
        assert model.num_classes == 7
        classifier = model.get_classifier()
        assert isinstance(classifier, nn.Linear)
        assert (classifier.in_features, classifier.out_features) == (model.num_features, 7)
        assert model.forward_head(run.features).shape == (BATCH, 7)


def test_model_reset_classifier_without_pooling(name: str, run: SimpleNamespace) -> None:
    # timm: reset_classifier(0, "") drops pooling *and* flattening, forward returns the feature map.
    model = _create(name).eval()
    model.reset_classifier(0, "")
    with torch.no_grad():
        out = model(run.x)
    assert out.dim() == 4
    assert torch.equal(out, run.features)


def test_model_features_only(name: str, run: SimpleNamespace) -> None:
    height, width = run.x.shape[-2:]

    model = _create(name, features_only=True).eval()  # seeded: the weights of run.model
    channels = model.feature_info.channels()
    reductions = model.feature_info.reduction()
    assert channels == [info["num_chs"] for info in run.model.feature_info]
    assert reductions == [info["reduction"] for info in run.model.feature_info]
    with torch.no_grad():
        outputs = model(run.x)
    assert len(outputs) == len(channels)
    for c, r, out, want in zip(channels, reductions, outputs, run.intermediates):
        assert out.shape == (BATCH, c, _spatial(height, r), _spatial(width, r))
        assert torch.equal(out, want)

    # A subset that skips a tap and stops before the last one.
    indices = (0, 2) if len(channels) > 3 else (0, len(channels) - 1)
    subset = _create(name, features_only=True, out_indices=indices).eval()
    assert subset.feature_info.channels() == [channels[i] for i in indices]
    assert subset.feature_info.reduction() == [reductions[i] for i in indices]
    with torch.no_grad():
        outputs = subset(run.x)
    assert len(outputs) == len(indices)
    for i, out in zip(indices, outputs):
        assert out.shape == (BATCH, channels[i], _spatial(height, reductions[i]), _spatial(width, reductions[i]))
        assert torch.equal(out, run.intermediates[i])


def test_model_create_entry_points(name: str) -> None:
    via_timm = timm.create_model(name)
    via_zoo = bnnzoo.create_model(name)
    assert isinstance(via_timm, BinaryNet) and isinstance(via_zoo, BinaryNet)
    assert _shapes(via_timm) == _shapes(via_zoo)
    assert via_timm.pretrained_cfg == via_zoo.pretrained_cfg
    assert bnnzoo.create_model(f"{name}.untrained").pretrained_cfg["tag"] == "untrained"

    model = bnnzoo.create_model(name, in_chans=1, num_classes=5, drop_rate=0.25).eval()
    assert (model.in_chans, model.num_classes, model.drop_rate) == (1, 5, 0.25)
    assert model.head_drop.p == 0.25
    first_conv = model.pretrained_cfg["first_conv"]
    assert model.state_dict()[first_conv + ".weight"].shape[1] == 1
    height, width = model.pretrained_cfg["input_size"][-2:]
    with torch.no_grad():
        out = model(torch.randn(BATCH, 1, height, width))
    assert out.shape == (BATCH, 5)
    assert torch.isfinite(out).all()


def test_model_genotype_sources(name: str, tmp_path) -> None:
    genotype = zoo_genotype(name)
    model = bnnzoo.create_model(name)
    assert model.genotype == genotype

    path = tmp_path / f"{name}.bnn"
    shutil.copyfile(zoo_genotype_path(name), path)
    raw_text = path.read_text(encoding="utf-8")
    others = {
        "path": bnnzoo.create_model(path),
        "str path": bnnzoo.create_model(str(path)),
        "Genotype": bnnzoo.create_model(genotype),
        "text": timm.create_model("bnnzoo_genotype", genotype=raw_text),
        "canonical text": timm.create_model("bnnzoo_genotype", genotype=bnnzoo.to_text(genotype)),
    }
    expected = _shapes(model)
    for source, other in others.items():
        assert other.genotype == genotype, source
        assert _shapes(other) == expected, source


def test_model_safetensors_round_trip(name: str, tmp_path) -> None:
    model = _create(name).eval()
    for module in model.modules():  # move the BatchNorm statistics off their initial values
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(3)
    path = tmp_path / "model.safetensors"
    save_file(model.state_dict(), str(path))

    torch.manual_seed(1)
    fresh = bnnzoo.create_model(name).eval()
    fresh.load_state_dict(load_file(str(path)), strict=True)
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, model.state_dict()[key]), key
    x = _input(model)
    with torch.no_grad():
        assert torch.equal(model(x), fresh(x))


@pytest.mark.slow
def test_model_onnx_export(name: str, tmp_path) -> None:
    onnx = pytest.importorskip("onnx")
    model = bnnzoo.create_model(name).eval()
    x = _input(model)
    path = tmp_path / f"{name}.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter's deprecation and constant-folding notes
        torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17)
    onnx.checker.check_model(str(path), full_check=True)
    graph = onnx.load(str(path)).graph
    (inp,) = graph.input
    assert [dim.dim_value for dim in inp.type.tensor_type.shape.dim] == list(x.shape)
    (output,) = graph.output
    # The batch dimension of the output may come out symbolic ("Gemm_dim_0"); the classes may not.
    dims = output.type.tensor_type.shape.dim
    assert len(dims) == 2 and dims[1].dim_value == model.num_classes


def test_onnx_export_matches_eager(tmp_path) -> None:
    # Numerics on a small MBConv model only: in a deep binary net any rounding difference near 0 flips a
    # sign and moves the logits (float64 against float32 in PyTorch differs as much), so this checks the
    # export's semantics (+1 padding, sign(0) = +1, shortcuts) where the model is shallow enough to match.
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = timm.create_model("bnnzoo_genotype", genotype=TINY_MBCONV).eval()
    x = _input(model)
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, x, str(path), dynamo=False, opset_version=17)
    onnx.checker.check_model(str(path), full_check=True)
    session = ReferenceEvaluator(str(path))
    (got,) = session.run(None, {session.input_names[0]: x.numpy()})
    with torch.no_grad():
        want = model(x)
    torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_model_torch_compile(name: str) -> None:
    # aot_eager runs the traced graph with the eager kernels: no C++ toolchain, and no fused arithmetic
    # that could flip a sign near 0. fullgraph=True: a graph break in the model is a failure.
    torch._dynamo.reset()
    model = bnnzoo.create_model(name).eval()
    x = _input(model)
    try:
        compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
        with torch.no_grad():
            got = compiled(x)
            want = model(x)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", SHORTCUT_KINDS)
def test_shortcut_override(kind: str) -> None:
    genotype = _mbconv_genotype()
    default = bnnzoo.create_model(genotype)
    default_kinds = {m.kind for m in default.modules() if isinstance(m, ReductionShortcut)}
    assert default_kinds == {genotype.shortcut}

    model = bnnzoo.create_model(genotype, shortcut=kind)
    kinds = [m.kind for m in model.modules() if isinstance(m, ReductionShortcut)]
    assert kinds, "the MBConv model has no reduction shortcut"
    assert set(kinds) == {kind}
    assert model.shortcut == kind
    assert _shapes(model) == _shapes(default)  # the shortcut is parameter-free
    if genotype.name in MODELS:
        by_name = bnnzoo.create_model(genotype.name, shortcut=kind)
        assert {m.kind for m in by_name.modules() if isinstance(m, ReductionShortcut)} == {kind}


def test_shortcut_override_forward() -> None:
    model = bnnzoo.create_model(bnnzoo.parse(TINY_MBCONV), shortcut="zero").eval()
    with torch.no_grad():
        out = model(_input(model))
    assert out.shape == (BATCH, 10)
    assert torch.isfinite(out).all()


def test_unknown_shortcut_raises(name: str) -> None:
    with pytest.raises(BnnzooError, match="shortcut"):
        bnnzoo.create_model(name, shortcut="partial_duplicat")


def test_pretrained_without_weights_raises(name: str) -> None:
    # ".untrained" never has weights; the bare name neither while no tag of the model has any.
    names = [f"{name}.untrained"] + ([name] if not pretrained_tags(name) else [])
    for model_name in names:
        with pytest.raises(BnnzooError, match="no trained weights"):
            bnnzoo.create_model(model_name, pretrained=True)
    with pytest.raises(BnnzooError, match="no trained weights"):
        timm.create_model(f"{name}.untrained", pretrained=True)


def test_genotype_model_takes_shape_from_genotype() -> None:
    genotype = bnnzoo.parse(TINY_MBCONV_GRAY)
    for model in (
        bnnzoo.create_model(genotype),
        timm.create_model("bnnzoo_genotype", genotype=TINY_MBCONV_GRAY),
    ):
        assert (model.in_chans, model.num_classes) == (1, 7)
        with torch.no_grad():
            assert model.eval()(torch.randn(BATCH, 1, 28, 28)).shape == (BATCH, 7)


def test_genotype_model_cfg_matches_genotype() -> None:
    model = bnnzoo.create_model(bnnzoo.parse(TINY_MBCONV_GRAY))
    cfg = model.pretrained_cfg
    assert tuple(cfg["input_size"]) == (1, 28, 28)
    assert cfg["num_classes"] == 7
    assert len(cfg["mean"]) == len(cfg["std"]) == 1


def test_shortcut_override_is_recorded_in_model_genotype() -> None:
    model = bnnzoo.create_model("mbconv_a", shortcut="zero")
    assert model.genotype.shortcut == "zero"
    assert bnnzoo.create_model("mbconv_a").genotype.shortcut == "partial_duplicate"


def test_published_weights_become_tagged_configs_with_hf_hub_id(monkeypatch) -> None:
    from bnnzoo import weights
    from bnnzoo.zoo import models

    entry = {"hf_hub_id": "bnnzoo/mbconv_a.fashion_mnist", "num_classes": 10, "input_size": (1, 32, 32)}
    monkeypatch.setattr(models, "_published_weights", lambda: {"mbconv_a": {"fashion_mnist": entry}})
    cfgs = models._zoo_cfgs()
    assert cfgs["mbconv_a.fashion_mnist"]["hf_hub_id"] == "bnnzoo/mbconv_a.fashion_mnist"
    assert cfgs["mbconv_a.fashion_mnist"]["input_size"] == (1, 32, 32)
    assert "hf_hub_id" not in cfgs["mbconv_a.untrained"]
    # The registry holds only the weights that ship in the package: no Hub entry is faked.
    assert pretrained_tags("mbconv_a") == list(weights.shipped_cfgs("mbconv_a"))
