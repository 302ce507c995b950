"""Checks of a packed file's weights, shared by :func:`~bnnzoo.export.packed.load_packed` and the runtime.

Every tensor's name and shape against the model is :func:`bnnzoo.trained.load_state_checked`'s job;
these check what the ``packed`` metadata adds: each entry names its bits and scale tensors, which
fit its weight shape, and names a binary convolution of the model.
"""

from __future__ import annotations

import os

import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.errors import WeightsError
from bnnzoo.export.codec import BITS_SUFFIX, SCALE_SUFFIX, unpack_signs


def decode_packed_weight(
    key: str, entry: dict, data: dict[str, torch.Tensor], path: str | os.PathLike
) -> tuple[torch.Tensor, tuple[str, str]]:
    """The latent weight ``sign * scale`` of packed entry ``key`` and the names of the two tensors it
    was decoded from; a :class:`WeightsError` if a tensor is missing or does not fit the entry's shape."""
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
    return signs.to(scale.dtype) * scale.reshape(-1, *([1] * (len(shape) - 1))), (bits_key, scale_key)


def packed_conv(modules: dict[str, nn.Module], key: str, path: str | os.PathLike) -> BinaryConv2d:
    """The binary convolution whose weight is the packed entry ``key`` (``<conv>.weight``)."""
    conv = modules.get(key.removesuffix(".weight"))
    if not isinstance(conv, BinaryConv2d):
        raise WeightsError(f"{path}: {key} is packed but is not a binary convolution of the model")
    return conv


def flagged_conv(modules: dict[str, nn.Module], name: str, path: str | os.PathLike) -> BinaryConv2d:
    """The binary convolution ``name`` that a ``flags`` entry sets."""
    conv = modules.get(name)
    if not isinstance(conv, BinaryConv2d):
        raise WeightsError(f"{path}: flags for {name}, which is not a binary convolution of the model")
    return conv
