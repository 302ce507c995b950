"""Packed export (bnnzoo.packed/1): bit packing, a bit-identical round trip, errors and file sizes."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file
from tiny import TWO_CELLS, genotype_text, trained

import bnnzoo
from bnnzoo.build.binary import BinaryConv2d, weight_scale
from bnnzoo.build.cell_ops import is_counted_batchnorm
from bnnzoo.errors import BnnzooError, WeightsError
from bnnzoo.export import (
    FORMAT,
    PackedBinaryConv2d,
    export_packed,
    load_packed,
    pack_signs,
    packed_size,
    read_packed_metadata,
    unpack_signs,
)
from bnnzoo.export.packed import exact_weight_scale

MBCONV = genotype_text(
    "tiny_mb",
    "mbconv",
    """
layers {
  MB3(2) 16 s2
  skip
  MB5(1) 24
}
""",
)

RESNET = genotype_text(
    "tiny_res",
    "resnet",
    """
layers {
  basic(binary) 8
  basic(real) 16 s2
  basic(binary) 24 s2
}
""",
)

CELLS = genotype_text(
    "tiny_cells",
    "bnas",
    "layers 3\nchannels 4\nreductions 1 2\n" + TWO_CELLS,
    stem="conv3x3 12",
)


# -- bit packing --------------------------------------------------------------------------------


def test_pack_bit_order_is_lsb_first_and_rows_are_padded():
    # One output channel of 10 weights: + - - + + + - - | + -   ->  bits 1,0,0,1,1,1,0,0 | 1,0
    weight = torch.tensor([1.0, -1, -2, 0.0, 3, 1, -1, -1, 5, -0.5]).reshape(1, 10, 1, 1)
    bits = pack_signs(weight)
    assert bits.dtype == torch.uint8 and bits.shape == (1, 2)
    assert bits.tolist() == [[0b00111001, 0b00000001]]  # element i is bit i % 8 of byte i // 8
    assert torch.equal(unpack_signs(bits, weight.shape), torch.where(weight >= 0, 1.0, -1.0))


@pytest.mark.parametrize("shape", [(4, 3, 3, 3), (16, 8, 1, 1), (5, 7, 5, 5), (2, 1, 1, 1)])
def test_pack_unpack_round_trip(shape):
    torch.manual_seed(1)
    weight = torch.randn(shape)
    weight[0, 0, 0, 0] = 0.0  # sign(0) = +1
    bits = pack_signs(weight)
    n = weight[0].numel()
    assert bits.shape == (shape[0], (n + 7) // 8)
    assert torch.equal(unpack_signs(bits, shape), torch.where(weight >= 0, 1.0, -1.0))


def test_unpack_rejects_bits_of_the_wrong_shape():
    with pytest.raises(WeightsError, match="do not fit"):
        unpack_signs(torch.zeros(4, 3, dtype=torch.uint8), (4, 3, 3, 3))


# -- the exact scale ----------------------------------------------------------------------------


def test_mean_of_equal_magnitudes_is_not_always_exact_but_the_exact_scale_is():
    torch.manual_seed(0)
    weight = torch.randn(64, 64, 3, 3) * 0.05
    scale = weight_scale(weight)
    restored = torch.where(weight >= 0, 1.0, -1.0) * scale
    # The reason PackedBinaryConv2d exists: float32 mean|W| of identical values misses some channels by an ulp.
    assert not torch.equal(weight_scale(restored), scale)
    assert torch.equal(exact_weight_scale(restored), scale)
    # Where magnitudes differ, the exact scale is the ordinary mean.
    assert torch.equal(exact_weight_scale(weight), scale)


# -- round trip ---------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [MBCONV, RESNET, CELLS], ids=["mbconv", "resnet", "cells"])
def test_packed_round_trip_is_bit_identical(tmp_path, text):
    model = trained(text)
    path = export_packed(model, tmp_path / "model.safetensors")
    loaded = load_packed(path)
    assert not loaded.training
    assert loaded.genotype == model.genotype
    x = torch.randn(4, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    packed = [module for module in loaded.modules() if isinstance(module, PackedBinaryConv2d)]
    originals = dict(model.named_modules())
    assert packed
    for name, module in loaded.named_modules():
        if isinstance(module, PackedBinaryConv2d):
            with torch.no_grad():
                assert torch.equal(module.binarized_weight(), originals[name].binarized_weight())
    # The state dict is a plain BinaryNet state dict.
    assert loaded.state_dict().keys() == model.state_dict().keys()


def test_exporting_a_loaded_packed_model_again_is_bit_identical(tmp_path):
    model = trained(MBCONV, seed=3)
    once = load_packed(export_packed(model, tmp_path / "once.safetensors"))
    twice = load_packed(export_packed(once, tmp_path / "twice.safetensors"))
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert torch.equal(twice(x), model(x))


def test_round_trip_keeps_overrides_and_flags(tmp_path):
    model = trained(RESNET, num_classes=7, in_chans=1)
    convs = [module for module in model.modules() if isinstance(module, BinaryConv2d)]
    convs[0].binary_weights = False  # stored as a real tensor
    convs[1].binary_activations = False
    path = export_packed(model, tmp_path / "model.safetensors")
    loaded = load_packed(path)
    assert (loaded.num_classes, loaded.in_chans) == (7, 1)
    loaded_convs = [module for module in loaded.modules() if isinstance(module, BinaryConv2d)]
    assert not loaded_convs[0].binary_weights and not isinstance(loaded_convs[0], PackedBinaryConv2d)
    assert not loaded_convs[1].binary_activations
    x = torch.randn(3, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_metadata_describes_the_file(tmp_path):
    model = trained(MBCONV, steps=1)
    path = export_packed(model, tmp_path / "model.safetensors")
    meta = read_packed_metadata(path)
    assert meta["format"] == FORMAT
    assert bnnzoo.parse(meta["genotype"]) == model.genotype
    assert meta["model_args"] == {
        "num_classes": 10,
        "in_chans": 3,
        "global_pool": "avg",
        "shortcut": "partial_duplicate",
    }
    state = model.state_dict()
    binary = {f"{name}.weight" for name, m in model.named_modules() if isinstance(m, BinaryConv2d)}
    assert set(meta["packed"]) == binary
    for key, entry in meta["packed"].items():
        assert entry["shape"] == list(state[key].shape)
        assert entry["bits"] == key + ".bits" and entry["scale"] == key + ".scale"
    # The header lists bits as U8 and every unpacked tensor as stored.
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    assert all(header[key + ".bits"]["dtype"] == "U8" for key in binary)
    assert "stem.conv.weight" in header and header["stem.conv.weight"]["dtype"] == "F32"


def test_training_from_a_packed_model_still_works(tmp_path):
    loaded = load_packed(export_packed(trained(MBCONV, steps=1), tmp_path / "m.safetensors"))
    loaded.train()
    loss = loaded(torch.randn(2, 3, 16, 16)).sum()
    loss.backward()
    conv = next(module for module in loaded.modules() if isinstance(module, PackedBinaryConv2d))
    assert conv.weight.grad is not None and conv.weight.grad.abs().sum() > 0


# -- errors ---------------------------------------------------------------------------------------


def test_truncated_packed_file(tmp_path):
    path = export_packed(trained(MBCONV, steps=1), tmp_path / "model.safetensors")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="truncated or corrupt"):
        load_packed(path)


def test_a_plain_safetensors_file_is_not_a_packed_file(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not a bnnzoo packed file"):
        load_packed(path)
    with pytest.raises(WeightsError, match="no such"):
        load_packed(tmp_path / "missing.safetensors")


def test_export_needs_a_binary_net(tmp_path):
    with pytest.raises(BnnzooError, match="BinaryNet"):
        export_packed(torch.nn.Linear(2, 2), tmp_path / "x.safetensors")


# -- sizes ----------------------------------------------------------------------------------------


def _counted_bytes(model, path) -> int:
    """Bytes of what the profiler counts: bits and scales of binary convs, weights and biases of real ones,
    and the affine weights and biases of the BNAS template's BatchNorms."""
    raw = path.read_bytes()
    header = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])
    keys = []
    for name, module in model.named_modules():
        if isinstance(module, BinaryConv2d) and module.binary_weights:
            keys += [f"{name}.weight.bits", f"{name}.weight.scale"]
        elif isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)):
            keys.append(f"{name}.weight")
        if isinstance(module, (torch.nn.Conv2d, torch.nn.Linear)) and module.bias is not None:
            keys.append(f"{name}.bias")
        if is_counted_batchnorm(module):
            keys += [f"{name}.weight", f"{name}.bias"]
    return sum(header[key]["data_offsets"][1] - header[key]["data_offsets"][0] for key in keys)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["xnor_resnet18", "bnas_cm"])
def test_zoo_file_size_against_profiler_params(tmp_path, name):
    model = bnnzoo.create_model(name).eval()
    path = export_packed(model, tmp_path / f"{name}.safetensors")
    size = packed_size(model, path)
    # What the profiler counts is stored in exactly that many bytes (all zoo rows are whole bytes) ...
    assert _counted_bytes(model, path) == round(size.params_mb * 1e6)
    # ... and the rest is BatchNorm statistics (and, outside the BNAS template, affine parameters), RPReLU
    # and RSign tensors plus the header, which it does not count.
    if name == "bnas_cm":
        assert size.ratio < 1.05
    else:
        # xnor_resnet18: ~11% over (BatchNorm 5%, RPReLU 3%, RSign 1%, header 2%): see docs/packed_format.md.
        assert 1.0 < size.ratio < 1.15


def test_an_engine_can_run_a_packed_convolution_from_the_documented_layout(tmp_path):
    """Follow docs/packed_format.md with numpy only: unpack, threshold, pad with +1, convolve, scale."""
    import numpy as np
    from safetensors import safe_open
    from safetensors.numpy import load_file

    model = trained(RESNET)
    path = export_packed(model, tmp_path / "model.safetensors")
    tensors = load_file(str(path))
    with safe_open(str(path), framework="np") as handle:
        packed = json.loads(handle.metadata()["packed"])
    name = "body.blocks.2.conv1.conv"  # a 3x3 binary convolution with stride 2
    entry = packed[f"{name}.weight"]
    captured = {}
    module = dict(model.named_modules())[name]
    handle = module.register_forward_hook(lambda mod, args, out: captured.update(x=args[0], y=out))
    with torch.no_grad():
        model(torch.randn(2, 3, 16, 16))
    handle.remove()

    out_channels, _, kh, kw = entry["shape"]
    bits = np.unpackbits(tensors[entry["bits"]], axis=1, bitorder="little")[:, : np.prod(entry["shape"][1:])]
    weight = np.where(bits == 1, 1.0, -1.0).reshape(entry["shape"]).astype(np.float32)
    x = captured["x"].numpy()
    activations = np.where(x - tensors[entry["threshold"]] >= 0, 1.0, -1.0).astype(np.float32)
    (ph, pw), (sh, sw) = entry["padding"], entry["stride"]
    padded = np.pad(activations, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=entry["pad_value"])
    out_h, out_w = (padded.shape[2] - kh) // sh + 1, (padded.shape[3] - kw) // sw + 1
    result = np.zeros((x.shape[0], out_channels, out_h, out_w), dtype=np.float64)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * sh : i * sh + kh, j * sw : j * sw + kw]
            # +-1 dot products: what XNOR + popcount computes, n - 2 * popcount(a XOR w).
            result[:, :, i, j] = np.einsum("nchw,ochw->no", window, weight)
    result *= tensors[entry["scale"]].reshape(1, -1, 1, 1)
    assert np.allclose(result, captured["y"].numpy(), rtol=1e-5, atol=1e-6)
