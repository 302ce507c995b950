"""Weights for the runtime: binary panels and fused epilogues, real convolutions with BatchNorm folded.

Binary convolution ``W_b = sign(W) * scale`` followed by BatchNorm runs as ``y = fma(acc * scale, a,
b)`` on the exact integer ``acc = n - 2 * popcount(act_bits XOR weight_bits)``: ``acc * scale`` is what
the float convolution computes when it sums exactly, and ``a = gamma / sqrt(var + eps)``, ``b = beta -
mean * a`` and the fused multiply-add are how torch's CPU BatchNorm computes it, so ties (values of
exactly 0 before a sign) come out the same.

Weight panels (``csrc/executor.inc``): the signs of output channel ``o`` are grouped by kernel tap
``(ky, kx)``; each tap holds ``ceil(C_g / 64)`` words with input channel ``c`` of its group in bit
``c % 64`` of word ``c // 64`` (1 = +1; channel padding bits 0). Per group, the output channels are
padded to a multiple of ``PANEL`` and stored ``[panel][tap word][PANEL]``: one vector load gives a
word of 16 (AVX-512: 2 x 8) output channels.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from bnnzoo.build.binary import BinaryConv2d, RPReLU
from bnnzoo.errors import ModelError
from bnnzoo.runtime.program import ACT_NONE, ACT_RELU, ACT_RPRELU, PANEL, BinaryLayer, FloatLayer, round_up, words

MAX_KERNEL = 11


class Blobs:
    """The float32 parameters and uint64 weight words of a compiled model, appended once and frozen."""

    def __init__(self) -> None:
        self._params: list[np.ndarray] = []
        self._weights: list[np.ndarray] = []
        self.n_params = 0
        self.n_weights = 0
        self.params: np.ndarray | None = None
        self.weights: np.ndarray | None = None

    def add_params(self, values: np.ndarray) -> int:
        """Append float32 values (padded to 16, so every vector starts 64-byte aligned); return their offset."""
        if self.params is not None:
            raise ModelError("internal: the runtime's parameters are frozen")
        values = np.ascontiguousarray(values, dtype=np.float32).reshape(-1)
        offset = self.n_params
        padded = np.zeros(round_up(max(values.size, 1), 16), dtype=np.float32)
        padded[: values.size] = values
        self._params.append(padded)
        self.n_params += padded.size
        return offset

    def add_weights(self, values: np.ndarray) -> int:
        if self.weights is not None:
            raise ModelError("internal: the runtime's weights are frozen")
        values = np.ascontiguousarray(values, dtype=np.uint64).reshape(-1)
        offset = self.n_weights
        self._weights.append(values)
        self.n_weights += values.size
        return offset

    def freeze(self) -> None:
        self.params = np.concatenate(self._params) if self._params else np.zeros(16, dtype=np.float32)
        self.weights = np.concatenate(self._weights) if self._weights else np.zeros(PANEL, dtype=np.uint64)
        self._params, self._weights = [], []
        self.n_params, self.n_weights = self.params.size, self.weights.size

    @property
    def nbytes(self) -> int:
        if self.params is None or self.weights is None:
            raise ModelError("internal: the runtime's blobs are not frozen yet")
        return self.params.nbytes + self.weights.nbytes


def _vector(tensor: torch.Tensor | None, size: int, what: str, default: float | None = None) -> np.ndarray:
    """A per-channel float64 vector of ``size`` (a single value broadcasts, as PReLU's does)."""
    if tensor is None:
        if default is None:
            raise ModelError(f"{what} is missing")
        return np.full(size, default)
    values = tensor.detach().cpu().double().reshape(-1).numpy()
    if values.size == 1:
        values = np.full(size, values[0])
    if values.size != size:
        raise ModelError(f"{what} has {values.size} values for {size} channels")
    return values


def batchnorm_affine(bn: nn.BatchNorm2d, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode BatchNorm as ``x * a + b``, with ``a`` and ``b`` computed in float32 exactly as
    torch's CPU kernel does (``a = w / sqrt(var + eps)``, ``b = bias - mean * a``), so that a value
    the float model normalises to exactly 0 is exactly 0 here too."""
    if not isinstance(bn, nn.BatchNorm2d) or bn.running_mean is None or bn.running_var is None:
        raise ModelError(f"{name}: the runtime needs a BatchNorm2d with running statistics")
    n = bn.num_features
    f32 = np.float32
    gamma = _vector(bn.weight, n, f"{name}.weight", 1.0).astype(f32)
    beta = _vector(bn.bias, n, f"{name}.bias", 0.0).astype(f32)
    var = _vector(bn.running_var, n, f"{name}.running_var").astype(f32)
    mean = _vector(bn.running_mean, n, f"{name}.running_mean").astype(f32)
    with np.errstate(all="ignore"):  # a corrupt negative variance gives NaN, as in torch
        a = (f32(1) / np.sqrt(var + f32(bn.eps))) * gamma
        b = beta - mean * a
    return a.astype(np.float64), b.astype(np.float64)


def _square(value: int | tuple[int, ...], what: str, name: str) -> int:
    values = (value,) * 2 if isinstance(value, int) else tuple(value)
    if len(set(values)) != 1:
        raise ModelError(f"{name}: the runtime needs the same {what} in both directions, got {values}")
    return int(values[0])


def check_binary_conv(conv: BinaryConv2d, name: str) -> None:
    if not (conv.binary_weights and conv.binary_activations):
        raise ModelError(
            f"{name}: the runtime runs fully binary convolutions only; this one has binary_weights="
            f"{conv.binary_weights}, binary_activations={conv.binary_activations} (a stage-1 checkpoint?)"
        )


def binary_panels(signs: np.ndarray, groups: int) -> np.ndarray:
    """Weight panels (module docstring) from the sign bits ``(O, C_g, kh, kw)`` (True = +1)."""
    out_channels, cg, kh, kw = signs.shape
    wg = words(cg)
    taps = np.zeros((out_channels, kh, kw, wg * 64), dtype=bool)
    taps[..., :cg] = signs.transpose(0, 2, 3, 1)
    packed = np.packbits(taps, axis=-1, bitorder="little")  # (O, kh, kw, wg * 8) bytes
    per_tap = packed.reshape(out_channels, -1).view("<u8").astype(np.uint64)  # (O, K) words
    k = per_tap.shape[1]
    og = out_channels // groups
    panels = -(-og // PANEL)
    grid = np.zeros((groups, panels * PANEL, k), dtype=np.uint64)
    grid[:, :og] = per_tap.reshape(groups, og, k)
    return grid.reshape(groups, panels, PANEL, k).transpose(0, 1, 3, 2).reshape(-1)


def tile_layout(values: np.ndarray, groups: int) -> np.ndarray:
    """Per-output-channel values laid out like the microkernels' accumulators: each group's from a
    multiple of PANEL (zeros between)."""
    og = values.size // groups
    step = round_up(og, PANEL)
    out = np.zeros(groups * step)
    for g in range(groups):
        out[g * step : g * step + og] = values[g * og : (g + 1) * og]
    return out


def binary_layer(
    blobs: Blobs,
    conv: BinaryConv2d,
    name: str,
    bn: nn.BatchNorm2d | None = None,
    rprelu: RPReLU | None = None,
    input_bn: nn.BatchNorm2d | None = None,
    relu: bool = False,
) -> BinaryLayer:
    """Pack ``conv``'s signs; put its scale, the BatchNorm after it and RPReLU or ReLU in the
    epilogue, and the BatchNorm before its sign (``input_bn``) and its RSign threshold into its
    input's binarisation."""
    check_binary_conv(conv, name)
    kernel = _square(conv.kernel_size, "kernel size", name)
    stride = _square(conv.stride, "stride", name)
    padding = _square(conv.padding, "padding", name)
    dilation = _square(conv.dilation, "dilation", name)
    if not 1 <= kernel <= MAX_KERNEL:
        raise ModelError(f"{name}: kernel {kernel} is outside the runtime's 1..{MAX_KERNEL}")
    out_channels, groups = conv.out_channels, conv.groups
    with torch.no_grad():
        binarized = conv.binarized_weight().detach().cpu()
        signs = (conv.weight.detach().cpu() >= 0).numpy()
    scale = binarized.abs().amax(dim=(1, 2, 3)).numpy()  # float32, as the forward pass uses it
    if conv.bias is not None:
        raise ModelError(f"{name}: the runtime's binary convolutions have no bias")
    if bn is None:
        bn_a = bn_b = -1
    else:
        a, b = batchnorm_affine(bn, f"{name} BatchNorm")
        if a.size != out_channels:
            raise ModelError(f"{name}: its BatchNorm covers {a.size} channels, the convolution has {out_channels}")
        bn_a, bn_b = blobs.add_params(tile_layout(a, groups)), blobs.add_params(tile_layout(b, groups))
    threshold = conv.rsign.threshold
    shift = None if threshold is None else _vector(threshold, conv.in_channels, f"{name} threshold")
    if input_bn is not None:  # sign(BN(x) - t) = sign(x * a + (b - t))
        in_a, in_b = batchnorm_affine(input_bn, f"{name} input BatchNorm")
        in_scale = blobs.add_params(in_a)
        in_offset = blobs.add_params(in_b - (0.0 if shift is None else shift))
    else:  # sign(x - t)
        in_scale, in_offset = -1, -1 if shift is None else blobs.add_params(shift)
    act = None
    if rprelu is not None:
        act = (
            blobs.add_params(_vector(rprelu.gamma, out_channels, "RPReLU gamma")),
            blobs.add_params(_vector(rprelu.prelu.weight, out_channels, "RPReLU slope")),
            blobs.add_params(_vector(rprelu.zeta, out_channels, "RPReLU zeta")),
        )
    return BinaryLayer(
        name=name,
        in_channels=conv.in_channels,
        out_channels=out_channels,
        groups=groups,
        kernel=kernel,
        stride=stride,
        padding=padding,
        dilation=dilation,
        weights=blobs.add_weights(binary_panels(signs, groups)),
        scale=blobs.add_params(tile_layout(scale, groups)),
        bn_a=bn_a,
        bn_b=bn_b,
        in_scale=in_scale,
        in_offset=in_offset,
        activation=ACT_RPRELU if act is not None else ACT_RELU if relu else ACT_NONE,
        rprelu=act,
    )


def float_layer(
    blobs: Blobs,
    conv: nn.Conv2d,
    name: str,
    before: nn.BatchNorm2d | None = None,
    after: nn.BatchNorm2d | None = None,
) -> FloatLayer:
    """A real convolution with the BatchNorm ``before`` it (unpadded only) and ``after`` it folded in.

    (Folding ``before`` is exact math only where no window reaches past the input, so the BNAS
    residual, which pads odd sizes after its BatchNorm, runs that BatchNorm as its own op.)"""
    kernel = _square(conv.kernel_size, "kernel size", name)
    stride = _square(conv.stride, "stride", name)
    padding = _square(conv.padding, "padding", name)
    if conv.groups != 1 or _square(conv.dilation, "dilation", name) != 1 or conv.padding_mode != "zeros":
        raise ModelError(f"{name}: the runtime's real convolutions have groups=1, dilation=1 and zero padding")
    weight = conv.weight.detach().cpu().double().numpy()  # (O, C, k, k)
    out_channels, in_channels = weight.shape[:2]
    bias = _vector(conv.bias, out_channels, f"{name}.bias", 0.0)
    if before is not None:
        if padding:
            raise ModelError(f"{name}: a BatchNorm before a padded convolution cannot be folded")
        a, b = batchnorm_affine(before, f"{name} input BatchNorm")
        bias = bias + np.einsum("ocyx,c->o", weight, b)
        weight = weight * a[None, :, None, None]
    if after is not None:
        a, b = batchnorm_affine(after, f"{name} BatchNorm")
        weight = weight * a[:, None, None, None]
        bias = bias * a + b
    opad = round_up(out_channels, PANEL)
    panel = np.zeros((kernel, kernel, in_channels, opad))
    panel[..., :out_channels] = weight.transpose(2, 3, 1, 0)
    padded_bias = np.zeros(opad)
    padded_bias[:out_channels] = bias
    return FloatLayer(
        name=name,
        in_channels=in_channels,
        out_channels=out_channels,
        kernel=kernel,
        stride=stride,
        padding=padding,
        weights=blobs.add_params(panel),
        bias=blobs.add_params(padded_bias),
    )
