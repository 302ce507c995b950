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
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from bnnzoo._atomic import atomic_path
from bnnzoo.build.binary import BinaryConv2d, SignWeightSTE, sign
from bnnzoo.build.network import BinaryNet
from bnnzoo.errors import ModelError, WeightsError
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

FORMAT = "bnnzoo.packed/1"
BITS_SUFFIX = ".bits"
SCALE_SUFFIX = ".scale"


# -- bit packing ------------------------------------------------------------------------------


def pack_signs(weight: torch.Tensor) -> torch.Tensor:
    """Pack ``weight >= 0`` per output channel: ``uint8`` of shape ``(O, ceil(n / 8))``, LSB first
    (``numpy.packbits(bitorder="little")``, zero-padded)."""
    positive = (weight.detach() >= 0).reshape(weight.shape[0], -1).cpu().numpy()
    return torch.from_numpy(np.packbits(positive, axis=1, bitorder="little"))


def unpack_signs(bits: torch.Tensor, shape: tuple[int, ...] | torch.Size) -> torch.Tensor:
    """Inverse of :func:`pack_signs`: a float32 tensor of ``shape`` holding ``+1`` and ``-1``."""
    rows = shape[0]
    n = 1
    for size in shape[1:]:
        n *= size
    expected = (rows, -(-n // 8))
    if tuple(bits.shape) != expected or bits.dtype != torch.uint8:
        raise WeightsError(
            f"packed bits of shape {tuple(bits.shape)} ({bits.dtype}) do not fit a weight of shape "
            f"{tuple(shape)}: expected uint8 {expected}"
        )
    flags = np.unpackbits(bits.cpu().numpy(), axis=1, count=n, bitorder="little")
    return torch.from_numpy(flags.astype(np.float32) * 2 - 1).reshape(shape)


# -- the exact-scale convolution ---------------------------------------------------------------


def exact_weight_scale(w: torch.Tensor) -> torch.Tensor:
    """``mean|W|`` per output channel, taken exactly (as ``max|W|``) where a channel's ``|W|`` are all equal."""
    if w.dim() == 1:
        return w.abs()
    dims = tuple(range(1, w.dim()))
    magnitude = w.abs()
    peak = magnitude.amax(dim=dims, keepdim=True)
    uniform = magnitude.amin(dim=dims, keepdim=True) == peak
    return torch.where(uniform, peak, magnitude.mean(dim=dims, keepdim=True))


class _ExactSignWeightSTE(SignWeightSTE):
    """:class:`SignWeightSTE` with :func:`exact_weight_scale` in the forward pass (same backward)."""

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return sign(w) * exact_weight_scale(w)


class PackedBinaryConv2d(BinaryConv2d):
    """A :class:`BinaryConv2d` restored from packed bits.

    Identical to BinaryConv2d (same parameters, state dict and gradients), except that the
    per-channel scale is :func:`exact_weight_scale`: a channel whose latent weights all have the same
    magnitude (as restored: ``sign * scale``) is scaled by exactly that magnitude, where a float32 mean
    could be one ulp off. Once training makes the magnitudes differ, it is the ordinary ``mean|W|``.
    """

    def binarized_weight(self) -> torch.Tensor:
        w = self.weight
        if torch.is_grad_enabled() and w.requires_grad:
            return _ExactSignWeightSTE.apply(w)
        return sign(w) * exact_weight_scale(w)


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
        "model_args": json.dumps(_model_args(model), sort_keys=True, separators=(",", ":")),
        "packed": json.dumps(packed, sort_keys=True, separators=(",", ":")),
        "flags": json.dumps(_flags(model), sort_keys=True, separators=(",", ":")),
        "bit_order": "little",
        "bnnzoo_version": __version__,
    }
    target = Path(path)
    with atomic_path(target) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return target


# -- load ----------------------------------------------------------------------------------------


def read_packed_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded metadata of a packed file: ``genotype`` text, ``model_args``, ``packed``, ``flags``."""
    metadata, _ = _open(Path(path), tensors=False)
    return metadata


def _open(path: Path, tensors: bool) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    if not path.is_file():
        raise WeightsError(f"{path}: no such packed weights file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = handle.metadata() or {}
            keys = list(handle.keys()) if tensors else []  # noqa: SIM118 (safe_open is not a dict)
            data = {key: handle.get_tensor(key) for key in keys}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a valid safetensors file (truncated or corrupt): {exc}") from None
    if raw.get("format") != FORMAT:
        found = raw.get("format")
        what = f"format {found!r}" if found else "no 'format' in its metadata"
        raise WeightsError(f"{path}: not a bnnzoo packed file ({what}; expected {FORMAT!r})")
    metadata: dict[str, Any] = {"format": FORMAT, "genotype": raw.get("genotype")}
    if not isinstance(metadata["genotype"], str):
        raise WeightsError(f"{path}: the packed file has no genotype in its metadata")
    for field, default in (("model_args", {}), ("packed", {}), ("flags", {})):
        try:
            value = json.loads(raw[field]) if field in raw else default
        except json.JSONDecodeError as exc:
            raise WeightsError(f"{path}: metadata '{field}' is not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise WeightsError(f"{path}: metadata '{field}' must be a JSON object")
        metadata[field] = value
    metadata["bnnzoo_version"] = raw.get("bnnzoo_version")
    return metadata, data


def load_packed(path: str | os.PathLike, device: str | torch.device | None = None) -> BinaryNet:
    """Rebuild the model of a packed file in eval mode; its outputs equal the exported model's exactly.

    The packed convolutions come back as :class:`PackedBinaryConv2d` with latent weights ``sign *
    scale`` (see the module docstring). ``device`` moves the model after loading.
    """
    from bnnzoo import dsl

    path = Path(path)
    metadata, data = _open(path, tensors=True)
    genotype = dsl.parse(metadata["genotype"], f"{path} (metadata 'genotype')")
    args = metadata["model_args"]
    unknown = set(args) - {"num_classes", "in_chans", "global_pool", "shortcut"}
    if unknown:
        raise WeightsError(f"{path}: unknown model_args in the metadata: {', '.join(sorted(unknown))}")
    model = BinaryNet(genotype, **{key: value for key, value in args.items() if value is not None})

    state: dict[str, torch.Tensor] = {}
    consumed: set[str] = set()
    for key, entry in metadata["packed"].items():
        shape = tuple(entry.get("shape", ()))
        bits_key, scale_key = entry.get("bits", key + BITS_SUFFIX), entry.get("scale", key + SCALE_SUFFIX)
        for needed in (bits_key, scale_key):
            if needed not in data:
                raise WeightsError(f"{path}: packed weight {key} lacks its tensor {needed}")
        scale = data[scale_key]
        if len(shape) < 2 or tuple(scale.shape) != shape[:1]:
            raise WeightsError(
                f"{path}: {scale_key} has shape {tuple(scale.shape)}, expected ({shape[0] if shape else '?'},) "
                f"for a weight of shape {shape}"
            )
        try:
            signs = unpack_signs(data[bits_key], shape)
        except WeightsError as exc:
            raise WeightsError(f"{path}: {bits_key}: {exc}") from None
        state[key] = signs.to(scale.dtype) * scale.reshape(-1, *([1] * (len(shape) - 1)))
        consumed.update((bits_key, scale_key))
    state.update({key: value for key, value in data.items() if key not in consumed})
    load_state_checked(model, state, source=str(path))

    packed_modules = {key[: -len(".weight")] for key in metadata["packed"]}
    for name, module in model.named_modules():
        if name in packed_modules:
            if not isinstance(module, BinaryConv2d):
                raise WeightsError(f"{path}: {name} is packed but is not a binary convolution in the model")
            module.__class__ = PackedBinaryConv2d
    for name, flags in metadata["flags"].items():
        module = dict(model.named_modules()).get(name)
        if not isinstance(module, BinaryConv2d):
            raise WeightsError(f"{path}: flags for {name}, which is not a binary convolution of the model")
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
