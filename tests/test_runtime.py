"""bnnzoo.runtime: exact binary arithmetic, every block type against the float model, every ISA.

Tolerance. The binary part is exact: a convolution of +-1 weights with +-1 activations gives the
same integers in the runtime as in the float model (``test_binary_convolution_is_exact``). The
real-valued parts (scale, BatchNorm, shortcuts, RPReLU, pooling) are float32 in both:

* With weights, thresholds and BatchNorm statistics on a coarse dyadic grid (``dyadic``) the float
  model computes exactly, so does the runtime, and the logits are bit-identical (``torch.equal``)
  for every model whose real-valued sums are order-independent: MBConv blocks with partial-duplicate
  or zero fill, basic blocks with binary downsampling.
* A real-valued convolution (Bi-Real's downsample, the BNAS cell residual) or a channel mean
  (global-average fill) sums in a different order than torch's, so there the logits agree within
  ``LOGIT_TOL`` of the largest logit (measured: <= 3e-7).
* Where a value before a sign lies within float32 rounding of its threshold, the two can take
  different signs and the difference spreads; on freshly initialised models (thresholds and BatchNorm
  means exactly 0) about one accumulator in sqrt(n) is exactly 0 and the float model's sign of it is
  rounding noise. Hence trained or dyadic weights here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import genotype_text, trained
from torch import nn

import bnnzoo
import bnnzoo.runtime as rt
from bnnzoo.build.binary import BinaryConv2d, RPReLU, RSign
from bnnzoo.errors import BnnzooError, ModelError
from bnnzoo.export import export_packed, load_packed
from bnnzoo.runtime.engine import Body

LOGIT_TOL = 1e-6


@pytest.fixture(scope="module", autouse=True)
def runtime_built() -> None:
    if rt.available():
        return
    if shutil.which(os.environ.get("CXX", "c++")) or shutil.which("g++"):
        pytest.fail(
            "a C++ compiler is present but bnnzoo.runtime._engine was not built: see pip's build log, or "
            "reinstall an editable install made before the runtime existed (pip install --no-deps -e .)"
        )
    pytest.skip("no C++ compiler, so no runtime: tests/test_runtime_build.py covers that install")


def supported_isas() -> list[str]:
    return [isa for isa in rt.ISAS if isa in rt.info()["supported"] and isa in rt.info()["built"]]


# -- exact integer arithmetic, per convolution ------------------------------------------------------

CONV_CASES = [
    # in, out, kernel, stride, dilation, groups, height, width
    (8, 16, 1, 1, 1, 1, 5, 5),
    (70, 20, 1, 2, 1, 1, 7, 9),  # a strided 1x1 (packed at stride 2)
    (3, 5, 3, 1, 1, 1, 1, 1),  # a 1x1 image: all but the centre tap is padding
    (64, 64, 3, 1, 1, 1, 4, 4),  # exactly one word per pixel
    (70, 20, 3, 2, 1, 1, 7, 8),  # odd sizes, 70 channels (two words)
    (130, 33, 3, 1, 2, 1, 9, 7),  # dilation 2, three words
    (10, 12, 3, 1, 2, 2, 9, 9),  # groups 2 with dilation 2, 5 channels per group
    (150, 150, 3, 2, 1, 2, 11, 11),  # groups 2, 75 channels per group (two words each)
    (96, 40, 5, 1, 1, 2, 6, 5),
    (16, 17, 5, 2, 2, 1, 13, 13),  # bin_dil_conv_5x5 at stride 2
    (12, 8, 7, 2, 1, 2, 9, 10),
]


def _sign_conv(cin: int, cout: int, k: int, s: int, d: int, g: int, seed: int) -> nn.Sequential:
    """A BinaryConv2d alone, with +-1 latent weights (scale exactly 1) and random thresholds."""
    torch.manual_seed(seed)
    conv = BinaryConv2d(cin, cout, k, stride=s, padding=d * (k // 2), dilation=d, groups=g)
    with torch.no_grad():
        conv.weight.copy_(torch.randn_like(conv.weight).sign())
        conv.rsign.threshold.copy_(torch.randn_like(conv.rsign.threshold).mul(0.3).round(decimals=1))
    return nn.Sequential(conv).eval()


@pytest.mark.parametrize("isa", ["avx512", "avx2", "scalar"])
@pytest.mark.parametrize(("cin", "cout", "k", "s", "d", "g", "h", "w"), CONV_CASES)
def test_binary_convolution_is_exact(isa, cin, cout, k, s, d, g, h, w):
    if isa not in supported_isas():
        pytest.skip(f"{isa} is not supported here")
    module = _sign_conv(cin, cout, k, s, d, g, seed=cin + k)
    x = torch.randn(3, cin, h, w).round(decimals=1)  # many values equal to a threshold: sign(0) = +1
    x[0, :, 0, 0] = module[0].rsign.threshold.detach().reshape(-1)
    with torch.no_grad():
        expected = module(x)  # integers: +-1 convolved with +-1, exact in float32
    got = Body(module, isa).run_nchw(x)
    assert got.shape == expected.shape
    assert torch.equal(got, expected)


def test_a_channel_count_of_exactly_64_times_n_and_the_padding_bits():
    """Channel padding bits must never count: 63, 64 and 65 channels at once."""
    for cin in (63, 64, 65, 127, 128, 129):
        module = _sign_conv(cin, 18, 3, 1, 1, 1, seed=cin)
        x = torch.randn(1, cin, 5, 6)
        with torch.no_grad():
            assert torch.equal(Body(module).run_nchw(x), module(x)), cin


# -- every block type against the float model --------------------------------------------------------


def dyadic(model: nn.Module, seed: int = 0) -> nn.Module:
    """Random parameters on a coarse dyadic grid, with which float32 computes the model exactly.

    Binary latent weights +-0.5 (scale 0.5), real weights and thresholds in steps of 1/8,
    BatchNorm with ``1 / sqrt(var + eps)`` a power of two, RPReLU slopes 1/4 or 1/2.
    """
    g = torch.Generator().manual_seed(seed)

    def grid(shape: tuple[int, ...], low: float, high: float, step: float) -> torch.Tensor:
        return torch.randint(round(low / step), round(high / step) + 1, tuple(shape), generator=g) * step

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, BinaryConv2d):
                m.weight.copy_(torch.where(torch.rand(m.weight.shape, generator=g) < 0.5, -0.5, 0.5))
            elif isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(grid(m.weight.shape, -0.5, 0.5, 0.125))
                if m.bias is not None:
                    m.bias.copy_(grid(m.bias.shape, -0.5, 0.5, 0.125))
            if isinstance(m, RSign) and m.threshold is not None:
                m.threshold.copy_(grid(m.threshold.shape, -0.5, 0.5, 0.125))
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                if m.affine:
                    m.weight.copy_(grid((n,), 0.25, 1.5, 0.25))
                    m.bias.copy_(grid((n,), -0.5, 0.5, 0.125))
                m.running_mean.copy_(grid((n,), -1.0, 1.0, 0.25))
                powers = 4.0 ** torch.randint(0, 3, (n,), generator=g).double()
                m.running_var.copy_((powers - m.eps).float())  # var + eps = 4^k exactly in float32
            if isinstance(m, RPReLU):
                m.gamma.copy_(grid(m.gamma.shape, -0.25, 0.25, 0.125))
                m.zeta.copy_(grid(m.zeta.shape, -0.25, 0.25, 0.125))
                m.prelu.weight.copy_(torch.where(torch.rand(m.prelu.weight.shape, generator=g) < 0.5, 0.25, 0.5))
    return model.eval()


def dyadic_images(n: int, channels: int, size: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-16, 17, (n, channels, size, size), generator=g).float() / 8


def assert_close(expected: torch.Tensor, got: torch.Tensor) -> None:
    scale = max(1.0, expected.abs().max().item())
    gap = (got - expected).abs().max().item()
    assert gap <= LOGIT_TOL * scale, f"logits differ by {gap:.3g} (largest logit {scale:.3g})"
    assert torch.equal(got.argmax(1), expected.argmax(1))


MBCONV = genotype_text(
    "rt_mb",
    "mbconv",
    """
layers {
  MB3(2) 16
  MB3(3) 70 s2
  skip
  MB5(1) 70
  MB7(2) 130 s2
  MB3(1) 130
}
""",
    input="3x15x15",
)

RESNET = genotype_text(
    "rt_res",
    "resnet",
    """
layers {
  basic(binary) 8
  basic(binary) 70 s2
  basic(real) 70
  basic(real) 130 s2
  basic(binary) 130
}
""",
    input="3x15x15",
)

CELLS = genotype_text(
    "rt_cells",
    "bnas",
    """layers 4
channels 6
reductions 1 3

cell normal {
  node 2 = bin_conv_3x3(0) + none(1)
  node 3 = bin_dil_conv_3x3(1) + avg_pool_3x3(2)
  node 4 = max_pool_3x3(2) + bin_dil_conv_5x5(3)
  node 5 = none(0) + none(1)
  concat 2 3 4 5
}

cell reduction {
  node 2 = max_pool_3x3(0) + bin_conv_5x5(1)
  node 3 = none(2) + bin_conv_3x3(1)
  node 4 = avg_pool_3x3(0) + bin_dil_conv_3x3(1)
  node 5 = bin_dil_conv_5x5(0) + avg_pool_3x3(4)
  concat 2 3 4 5
}
""",
    stem="conv3x3 18",
)


RESNET_BINARY = genotype_text(
    "rt_xnor",
    "resnet",
    """
layers {
  basic(binary) 8
  basic(binary) 70 s2
  basic(binary) 70
  basic(binary) 130 s2
}
""",
    input="3x13x13",
)


def _loaded(model: nn.Module, tmp_path, **kwargs) -> tuple[nn.Module, rt.Runtime]:
    """Export, then load the file twice: as the float model and as the runtime."""
    path = export_packed(model, tmp_path / "model.packed.safetensors")
    return load_packed(path), rt.load(path, **kwargs)


def _outputs(model: nn.Module, runtime: rt.Runtime, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        return model(x), runtime(x)


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [(MBCONV, {}), (MBCONV, {"shortcut": "zero"}), (RESNET_BINARY, {}), (RESNET_BINARY, {"in_chans": 1})],
    ids=["mbconv", "mbconv-zero-fill", "resnet-binary-downsample", "resnet-1-channel"],
)
def test_logits_are_bit_identical(tmp_path, text, kwargs):
    model, runtime = _loaded(dyadic(bnnzoo.create_model(bnnzoo.parse(text), **kwargs), seed=1), tmp_path)
    size = model.genotype.input_shape[1]
    expected, got = _outputs(model, runtime, dyadic_images(8, model.in_chans, size, seed=2))
    assert torch.equal(got, expected)


@pytest.mark.parametrize(
    ("text", "kwargs"),
    [(MBCONV, {"shortcut": "global_average"}), (RESNET, {}), (RESNET, {"num_classes": 7}), (CELLS, {})],
    ids=["mbconv-global-average", "resnet-real-downsample", "resnet-7-classes", "cells"],
)
def test_logits_match_within_rounding(tmp_path, text, kwargs):
    model, runtime = _loaded(dyadic(bnnzoo.create_model(bnnzoo.parse(text), **kwargs), seed=1), tmp_path)
    size = model.genotype.input_shape[1]
    assert_close(*_outputs(model, runtime, dyadic_images(8, model.in_chans, size, seed=2)))


@pytest.mark.parametrize("text", [MBCONV, RESNET, CELLS], ids=["mbconv", "resnet", "cells"])
def test_trained_models_match_within_rounding(tmp_path, text):
    """Continuous trained weights (no grid): the same tolerance."""
    model, runtime = _loaded(trained(text, steps=3, seed=4), tmp_path)
    torch.manual_seed(5)
    size = model.genotype.input_shape[1]
    assert_close(*_outputs(model, runtime, torch.randn(16, 3, size, size)))


def test_other_input_sizes_are_planned_on_demand(tmp_path):
    model, runtime = _loaded(dyadic(bnnzoo.create_model(bnnzoo.parse(RESNET_BINARY)), seed=3), tmp_path)
    for size in (13, 9, 20, 1):
        expected, got = _outputs(model, runtime, dyadic_images(3, 3, size, seed=size))
        assert torch.equal(got, expected), size


@pytest.mark.parametrize("name", ["mbconv_a", "xnor_resnet18"])
def test_zoo_models_are_bit_identical(name):
    model = dyadic(bnnzoo.create_model(name), seed=0)
    expected, got = _outputs(model, rt.compile_model(model), dyadic_images(2, 3, 32, seed=1))
    assert torch.equal(got, expected)


ORDER_DEPENDENT = ("bireal_", "bnas_")  # a real convolution in the body (and BNAS's 3x3 average pools)


@pytest.mark.slow
def test_every_zoo_model_matches_the_float_model():
    for name in bnnzoo.list_models():
        model = dyadic(bnnzoo.create_model(name), seed=2)
        expected, got = _outputs(model, rt.compile_model(model), dyadic_images(2, 3, 32, seed=3))
        if name.startswith(ORDER_DEPENDENT):
            assert_close(expected, got)
        else:
            assert torch.equal(got, expected), name


@pytest.mark.slow
def test_resident_weights_are_the_packed_file_size(tmp_path):
    """The target: within 10% of the file (measured: -4% to +5% over the zoo)."""
    for name in bnnzoo.list_models():
        path = export_packed(bnnzoo.create_model(name), tmp_path / f"{name}.packed.safetensors")
        ratio = rt.load(path).weight_bytes / path.stat().st_size
        assert 0.9 <= ratio <= 1.1, f"{name}: resident weights are {ratio:.3f} x the file"


# -- dispatch ---------------------------------------------------------------------------------------


def test_every_isa_gives_identical_logits(tmp_path, monkeypatch):
    """The epilogues round identically on every ISA (no contraction), so results are bit-identical."""
    path = export_packed(trained(MBCONV), tmp_path / "m.packed.safetensors")
    x = torch.randn(5, 3, 15, 15)
    results = {}
    for isa in supported_isas():
        monkeypatch.setenv(rt.ISA_ENV, isa)
        runtime = rt.load(path)
        assert runtime.isa == isa
        results[isa] = runtime(x)
    assert set(results) >= {"scalar"}
    first = next(iter(results.values()))
    for isa, logits in results.items():
        assert torch.equal(logits, first), isa


def test_the_automatic_choice_is_the_best_supported_isa(monkeypatch):
    monkeypatch.delenv(rt.ISA_ENV, raising=False)
    assert rt.resolve_isa() == supported_isas()[0]
    monkeypatch.setenv(rt.ISA_ENV, "auto")
    assert rt.resolve_isa() == supported_isas()[0]
    assert rt.resolve_isa("scalar") == "scalar"  # an explicit request wins over the environment


def test_this_machine_has_the_avx512_path():
    """The workplace's CPUs have AVX-512 VPOPCNTDQ: every path must be exercised here."""
    if "avx512_vpopcntdq" not in Path("/proc/cpuinfo").read_text():
        pytest.skip("not an AVX-512 VPOPCNTDQ machine")
    assert supported_isas() == ["avx512", "avx2", "scalar"]


def test_bad_isa_requests_are_clear_errors(monkeypatch):
    monkeypatch.setenv(rt.ISA_ENV, "neon")
    with pytest.raises(BnnzooError, match=r"BNNZOO_RUNTIME_ISA='neon': unknown ISA"):
        rt.resolve_isa()
    with pytest.raises(BnnzooError, match=r"isa='sse9': unknown ISA"):
        rt.resolve_isa("sse9")


def test_threads_do_not_change_the_result(tmp_path):
    _, runtime = _loaded(trained(CELLS), tmp_path)
    x = torch.randn(6, 3, 16, 16)
    runtime.threads = 1
    batch, single = runtime(x), runtime(x[:1])
    runtime.threads = 2
    assert torch.equal(runtime(x), batch)  # an image per thread
    assert torch.equal(runtime(x[:1]), single)  # every op split across the threads
    with pytest.raises(ModelError, match="threads must be an integer"):
        runtime.threads = 0


# -- usability ----------------------------------------------------------------------------------------


def test_numpy_in_numpy_out_and_shape_errors(tmp_path):
    _, runtime = _loaded(trained(MBCONV), tmp_path)
    images = np.random.default_rng(0).standard_normal((2, 3, 15, 15)).astype(np.float32)
    logits = runtime(images)
    assert isinstance(logits, np.ndarray) and logits.shape == (2, 10)
    assert np.array_equal(logits, runtime(torch.from_numpy(images)).numpy())
    assert runtime(torch.zeros(0, 3, 15, 15)).shape == (0, 10)
    with pytest.raises(ModelError, match=r"shape \(N, 3, H, W\), got \(3, 15, 15\)"):
        runtime(images[0])
    with pytest.raises(ModelError, match="torch.Tensor or numpy.ndarray"):
        runtime([[1.0]])


def test_resident_weights_are_counted(tmp_path):
    path = export_packed(trained(MBCONV), tmp_path / "m.packed.safetensors")
    runtime = rt.load(path)
    # this tiny model's 8- and 16-channel layers waste most of each 64-bit word and 16-channel panel
    assert path.stat().st_size / 2 < runtime.weight_bytes < 2 * path.stat().st_size
    assert "rt_mb" in repr(runtime) and "isa=" in repr(runtime)


def test_an_unavailable_engine_is_a_clear_error(monkeypatch, tmp_path):
    from bnnzoo.runtime import _native

    monkeypatch.setattr(_native, "_engine", None)
    assert not rt.available()
    with pytest.raises(rt.RuntimeUnavailableError, match="native extension .* was not built"):
        rt.load(tmp_path / "missing.safetensors")


def test_models_the_runtime_cannot_run_are_refused(tmp_path):
    model = trained(RESNET)
    model.body.blocks[1].conv1.conv.binary_weights = False  # a stage-1 checkpoint
    path = export_packed(model, tmp_path / "m.packed.safetensors")
    with pytest.raises(ModelError, match="fully binary convolutions only.*binary_weights=False"):
        rt.load(path)
    with pytest.raises(ModelError, match="runs bnnzoo BinaryNet models"):
        rt.Runtime(nn.Linear(2, 2))
