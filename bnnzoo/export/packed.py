"""Packed export: binary weights as sign bits, everything else as-is, in one safetensors file.

The format, ``bnnzoo.packed/1``, is specified in ``docs/packed_format.md``. In short:

* every :class:`~bnnzoo.build.binary.BinaryConv2d` whose ``binary_weights`` is True stores, instead of
  its latent ``<conv>.weight`` (shape ``(O, I/groups, kh, kw)``):

  - ``<conv>.weight.bits``: ``uint8``, shape ``(O, ceil(n / 8))`` with ``n = I/groups * kh * kw``. Row
    ``o`` holds the signs of ``weight[o].flatten()`` (C order), element ``i`` in bit ``i % 8`` (least
    significant bit first) of byte ``i // 8``; bit 1 means ``+1`` (latent weight ``>= 0``), bit 0
    means ``-1``. Each row is padded with zero bits to a whole byte.
  - ``<conv>.weight.scale``: shape ``(O,)``, in the weight's dtype (float32 for bnnzoo's models): the
    per-output-channel ``mean|W|`` exactly as the forward pass computed it;

* every other parameter and buffer is stored unchanged (dtype and shape);
* the safetensors metadata carries ``format``, the canonical genotype text, the constructor
  arguments (``model_args``), the map of packed weights with their original shapes (``packed``) and
  the BinaryConv2d flags that differ from the defaults (``flags``).

Bit-identical round trip: :func:`load_packed` rebuilds the model from the embedded genotype and sets
each packed latent weight to ``sign * scale``. Computing ``mean|W|`` of ``n`` copies of ``scale`` in
float32 does not always give ``scale`` back (the sum rounds; about half of the channels of a random
layer come back one ulp off, and for some values no latent tensor at all has exactly that mean). So the
restored convolutions are :class:`PackedBinaryConv2d`: a BinaryConv2d whose scale is ``max|W|`` when all
``|W|`` of a channel are equal (which is then exactly ``mean|W|``) and ``mean|W|`` otherwise. Its
binarized weight is therefore exactly ``sign * scale`` and the outputs are bit-identical
(``torch.equal``) to the exported model's, on the device and thread settings the scales were computed
with. Its state dict is a plain BinaryNet state dict.

This module holds the model-level entry points; the bits and the file are :mod:`bnnzoo.export.codec`,
the convolution :mod:`bnnzoo.export.exact_scale`, the checks of packed entries :mod:`bnnzoo.export.checks`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.network import BinaryNet
from bnnzoo.errors import ModelError, WeightsError
from bnnzoo.export.checks import decode_packed_weight, flagged_conv, packed_conv
from bnnzoo.export.codec import (
    BITS_SUFFIX,
    FORMAT,
    SCALE_SUFFIX,
    pack_signs,
    read_packed_file,
    read_packed_metadata,
    unpack_signs,
    write_packed_file,
)
from bnnzoo.export.exact_scale import PackedBinaryConv2d, exact_weight_scale
from bnnzoo.trained import load_state_checked

__all__ = [
    "BITS_SUFFIX",
    "FORMAT",
    "SCALE_SUFFIX",
    "PackedBinaryConv2d",
    "PackedSize",
    "exact_weight_scale",
    "export_packed",
    "load_packed",
    "load_state_checked",
    "pack_signs",
    "packed_size",
    "read_packed_metadata",
    "unpack_signs",
]

# -- export --------------------------------------------------------------------------------------


def _packed_convs(model: nn.Module) -> dict[str, BinaryConv2d]:
    return {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, BinaryConv2d) and module.binary_weights
    }


def _flags(model: nn.Module) -> dict[str, dict[str, bool]]:
    """The BinaryConv2d flags that differ from the defaults (both True), by module name."""
    flags = {}
    for name, module in model.named_modules():
        if isinstance(module, BinaryConv2d) and not (module.binary_weights and module.binary_activations):
            flags[name] = {
                "binary_weights": bool(module.binary_weights),
                "binary_activations": bool(module.binary_activations),
            }
    return flags


def _model_args(model: BinaryNet) -> dict[str, Any]:
    pool = getattr(model.global_pool, "pool_type", None)
    return {
        "num_classes": int(model.num_classes),
        "in_chans": int(model.in_chans),
        "global_pool": pool if isinstance(pool, str) and pool else None,
        "shortcut": model.shortcut,
    }


def export_packed(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write ``model`` (a :class:`BinaryNet`) as a ``bnnzoo.packed/1`` safetensors file, atomically.

    Binary convolution weights become sign bits plus a per-output-channel scale; every other
    parameter and buffer is stored unchanged. Returns the path written.
    """
    from bnnzoo import __version__
    from bnnzoo.dsl import to_text

    if not isinstance(model, BinaryNet):
        raise ModelError(f"packed export needs a bnnzoo BinaryNet (built from a genotype), got {type(model).__name__}")
    state = model.state_dict()
    packed: dict[str, dict[str, Any]] = {}
    tensors: dict[str, torch.Tensor] = {}
    for name, conv in _packed_convs(model).items():
        key = f"{name}.weight"
        weight = conv.weight.detach()
        # The scale exactly as the forward pass uses it, on the weight's own device: every entry of a
        # binarized channel is +-scale, so max|W_b| recovers it without rounding (for BinaryConv2d this
        # is mean|W|; for a PackedBinaryConv2d, its exact scale).
        with torch.no_grad():
            binarized = conv.binarized_weight()
        scale = binarized.abs().amax(dim=tuple(range(1, binarized.dim()))).reshape(weight.shape[0])
        tensors[key + BITS_SUFFIX] = pack_signs(weight)
        tensors[key + SCALE_SUFFIX] = scale.cpu().contiguous()
        threshold = f"{name}.rsign.threshold"
        packed[key] = {
            "shape": list(weight.shape),
            "bits": key + BITS_SUFFIX,
            "scale": key + SCALE_SUFFIX,
            # For inference engines: how the convolution runs (see docs/packed_format.md).
            "stride": list(conv.stride),
            "padding": list(conv.padding),
            "dilation": list(conv.dilation),
            "groups": int(conv.groups),
            "bias": f"{name}.bias" if conv.bias is not None else None,
            "binary_activations": bool(conv.binary_activations),
            "threshold": threshold if threshold in state and conv.binary_activations else None,
            "pad_value": 1.0 if conv.binary_activations else 0.0,
        }
    for key, value in state.items():
        if key in packed:
            continue
        if key + BITS_SUFFIX in state or key + SCALE_SUFFIX in state:
            raise ModelError(f"cannot pack {key}: the state dict already has {key}{BITS_SUFFIX} or {SCALE_SUFFIX}")
        tensors[key] = value.detach().cpu().contiguous().clone()
    metadata = {
        "format": FORMAT,
        "genotype": to_text(model.genotype),
        "model_args": _model_args(model),
        "packed": packed,
        "flags": _flags(model),
        "bit_order": "little",
        "bnnzoo_version": __version__,
    }
    return write_packed_file(Path(path), tensors, metadata)


# -- load ----------------------------------------------------------------------------------------


def load_packed(path: str | os.PathLike, device: str | torch.device | None = None) -> BinaryNet:
    """Rebuild the model of a packed file in eval mode; its outputs equal the exported model's exactly.

    The packed convolutions come back as :class:`PackedBinaryConv2d` with latent weights ``sign *
    scale`` (see the module docstring). ``device`` moves the model after loading.
    """
    from bnnzoo import dsl

    path = Path(path)
    metadata, data = read_packed_file(path, tensors=True)
    genotype = dsl.parse(metadata["genotype"], f"{path} (metadata 'genotype')")
    args = metadata["model_args"]
    unknown = set(args) - {"num_classes", "in_chans", "global_pool", "shortcut"}
    if unknown:
        raise WeightsError(f"{path}: unknown model_args in the metadata: {', '.join(sorted(unknown))}")
    model = BinaryNet(genotype, **{key: value for key, value in args.items() if value is not None})

    state: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for key, entry in metadata["packed"].items():
        state[key], names = decode_packed_weight(key, entry, data, path)
        consumed.update(names)
    state.update({key: value for key, value in data.items() if key not in consumed})
    load_state_checked(model, state, source=str(path))

    modules = dict(model.named_modules())
    for key in metadata["packed"]:
        packed_conv(modules, key, path).__class__ = PackedBinaryConv2d
    for name, flags in metadata["flags"].items():
        module = flagged_conv(modules, name, path)
        module.binary_weights = bool(flags.get("binary_weights", True))
        module.binary_activations = bool(flags.get("binary_activations", True))
    model.eval()
    if device is not None:
        model.to(device)
    return model


# -- sizes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackedSize:
    """The size of a packed file beside the profiler's Params (MB) of the same model."""

    file_bytes: int
    params_mb: float

    @property
    def file_mb(self) -> float:
        return self.file_bytes / 1e6

    @property
    def ratio(self) -> float:
        """File size / profiler Params (MB); above 1 by the BatchNorm, RPReLU and RSign tensors and the header."""
        return self.file_mb / self.params_mb if self.params_mb else float("inf")


def packed_size(model: BinaryNet, path: str | os.PathLike) -> PackedSize:
    """Compare the packed file at ``path`` with the profiler's Params (MB) of ``model``."""
    from bnnzoo.profile import profile

    _, height, width = model.genotype.input_shape
    params_mb = profile(model, (model.in_chans, height, width)).params_mb
    return PackedSize(Path(path).stat().st_size, params_mb)
