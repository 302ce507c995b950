"""Binary building blocks: sign functions with their surrogate gradients, RSign, RPReLU, BinaryConv2d.

Conventions (see ``REFERENCE.md``, "BNN training practice"):

* ``sign(0) = +1`` everywhere, so every binarized value is exactly ``+1`` or ``-1`` (times a scale for
  weights).
* Activations: forward ``sign(x)``; backward the Bi-Real ApproxSign gradient
  ``2 + 2x`` on ``[-1, 0)``, ``2 - 2x`` on ``[0, 1)``, ``0`` elsewhere, i.e. ``max(0, 2 - 2|x|)``.
* Weights: forward ``sign(W) * alpha`` with ``alpha`` the per-output-channel ``mean|W|`` (mean over every
  dim but dim 0); backward the ReActNet clipped straight-through estimator
  ``dL/dW = dL/dW_b * 1[|W| <= 1]``. ``alpha`` is treated as a constant (detached): no gradient flows
  through it, and the STE gradient is *not* multiplied by it (exactly what ReActNet's reference code does).

Padding in :class:`BinaryConv2d`: zero is not a binary value, so the *binarized* input is padded with
``+1`` (``F.pad(value=1.0)``) and the convolution itself runs with ``padding=0``. When the layer's
activations are not binarized (``binary_activations=False``) the real input is zero-padded as in
``nn.Conv2d``.

Export: both sign functions are :class:`torch.autograd.Function` s whose forward uses only standard ops
(``>=``, ``where``, ``abs``, ``mean``, ``mul``); the legacy ONNX exporter inlines them, ``torch.compile``
traces them. Without grad (``torch.no_grad`` or an input that does not require grad) the plain forward is
used directly.

Tracing and scripting: :class:`RSign` and :class:`BinaryConv2d` are registered with timm as leaf
modules (``timm.layers.register_notrace_module``), so timm's and torchvision's FX feature extraction
keep them whole; the sign functions are ``torch.fx.wrap`` ped, so the layers also trace inline with a
plain ``torch.fx`` tracer. TorchScript cannot compile autograd Functions: scripting either layer raises
:class:`~bnnzoo.errors.ModelError`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.fx
import torch.nn.functional as F
from timm.layers import register_notrace_module
from torch import nn
from torch.nn.modules.utils import _pair

from bnnzoo.errors import ModelError

__all__ = [
    "ApproxSign",
    "BinaryConv2d",
    "RPReLU",
    "RSign",
    "SignSTE",
    "SignWeightSTE",
    "binarize_activation",
    "binarize_weight",
    "set_binary_weights",
    "sign",
    "weight_scale",
]


def sign(x: torch.Tensor) -> torch.Tensor:
    """``+1`` where ``x >= 0``, ``-1`` elsewhere (``sign(0) = +1``), in ``x``'s dtype. No gradient."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel ``mean|W|`` (mean over every dim but dim 0), shaped to broadcast against ``w``."""
    if w.dim() == 1:
        return w.abs()
    return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


class ApproxSign(torch.autograd.Function):
    """``sign(x)`` forward, Bi-Real ApproxSign gradient ``max(0, 2 - 2|x|)`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        # 2 + 2x on [-1, 0), 2 - 2x on [0, 1), 0 elsewhere: all equal to max(0, 2 - 2|x|).
        return grad_output * (2.0 - 2.0 * x.abs()).clamp_min(0.0)


def _clipped_ste(w: torch.Tensor, grad_output: torch.Tensor) -> torch.Tensor:
    """The clipped straight-through gradient ``g * 1[|W| <= 1]``."""
    return grad_output * (w.abs() <= 1.0).to(grad_output.dtype)


class SignSTE(torch.autograd.Function):
    """``sign(W)`` forward (no scale), clipped STE ``g * 1[|W| <= 1]`` backward.

    The search's vectorised supernet mixes several ops' binarized kernels with its own scales.
    """

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return sign(w)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return _clipped_ste(w, grad_output)


class SignWeightSTE(torch.autograd.Function):
    """``sign(W) * mean|W|`` forward (per output channel), clipped STE ``g * 1[|W| <= 1]`` backward.

    The scale is a constant for the backward pass: the returned gradient is exactly
    ``grad_output`` where ``|W| <= 1`` and ``0`` elsewhere (not multiplied by the scale, no term through it).
    """

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return sign(w) * weight_scale(w)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> torch.Tensor:
        (w,) = ctx.saved_tensors
        return _clipped_ste(w, grad_output)


@torch.fx.wrap
def binarize_activation(x: torch.Tensor) -> torch.Tensor:
    """Exactly ``±1`` values with the ApproxSign surrogate gradient (see :class:`ApproxSign`)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return ApproxSign.apply(x)
    return sign(x)


@torch.fx.wrap
def binarize_weight(w: torch.Tensor) -> torch.Tensor:
    """``sign(W) * mean|W|`` per output channel with the clipped STE (see :class:`SignWeightSTE`)."""
    if torch.is_grad_enabled() and w.requires_grad:
        return SignWeightSTE.apply(w)
    return sign(w) * weight_scale(w)


def _not_scriptable(module: nn.Module) -> ModelError:
    return ModelError(
        f"{type(module).__name__} cannot be compiled with TorchScript: its surrogate gradient is an autograd "
        "Function (and torch.jit.script is deprecated); use torch.compile, torch.fx, torch.export or ONNX export"
    )


@register_notrace_module
class RSign(nn.Module):
    """Sign with a learnable per-channel threshold (ReActNet RSign) on NCHW input.

    Outputs ``sign(x - threshold)`` with the ApproxSign gradient; ``threshold`` has shape ``(1, C, 1, 1)``
    and starts at 0. With ``learnable=False`` the module has no parameters and computes ``sign(x)``.
    """

    threshold: nn.Parameter | None

    def __init__(self, channels: int, learnable: bool = True) -> None:
        super().__init__()
        self.channels = channels
        self.learnable = learnable
        if learnable:
            self.threshold = nn.Parameter(torch.zeros(1, channels, 1, 1))
        else:
            self.register_parameter("threshold", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.threshold is not None:
            x = x - self.threshold
        return binarize_activation(x)

    def extra_repr(self) -> str:
        return f"{self.channels}, learnable={self.learnable}"

    def __prepare_scriptable__(self) -> nn.Module:
        raise _not_scriptable(self)


class RPReLU(nn.Module):
    """ReActNet RPReLU on NCHW input: ``PReLU(x - gamma) + zeta``, all three per channel.

    ``gamma`` and ``zeta`` start at 0; the PReLU slope ``beta`` (``self.prelu.weight``) starts at 0.25.
    """

    def __init__(self, channels: int, init_slope: float = 0.25) -> None:
        super().__init__()
        self.channels = channels
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.prelu = nn.PReLU(channels, init=init_slope)
        self.zeta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x - self.gamma) + self.zeta


@register_notrace_module
class BinaryConv2d(nn.Conv2d):
    """A 2-D convolution with binarized weights and binarized input activations.

    Weights: ``sign(W) * mean|W|`` per output channel (:func:`binarize_weight`) while ``binary_weights``
    is True, the real ``W`` otherwise. Activations: the input goes through ``self.rsign`` (an
    :class:`RSign` with a learnable threshold unless ``learnable_threshold=False``) while
    ``binary_activations`` is True. The binarized input is padded with ``+1``, not 0; ``self.padding``
    keeps the requested padding, but the convolution itself runs with ``padding=0``.

    Both flags are plain attributes and can be flipped at runtime (two-step training, see
    :func:`set_binary_weights`). ``is_binary`` lets profilers recognize the layer with ``isinstance``.
    """

    is_binary: ClassVar[bool] = True

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = False,
        *,
        learnable_threshold: bool = True,
        binary_weights: bool = True,
        binary_activations: bool = True,
    ) -> None:
        if isinstance(padding, str):
            raise ModelError(f"BinaryConv2d needs integer padding, got {padding!r}")
        super().__init__(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=_pair(padding),
            dilation=dilation,
            groups=groups,
            bias=bias,
        )
        self.binary_weights = binary_weights
        self.binary_activations = binary_activations
        self.rsign = RSign(in_channels, learnable=learnable_threshold)

    def binarized_weight(self) -> torch.Tensor:
        """The ``±scale`` weight the forward pass uses while ``binary_weights`` is True (with the STE)."""
        return binarize_weight(self.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad_h, pad_w = self.padding  # type: ignore[misc]
        if self.binary_activations:
            x = self.rsign(x)
            fill = 1.0
        else:
            fill = 0.0
        if pad_h or pad_w:
            x = F.pad(x, (pad_w, pad_w, pad_h, pad_h), value=fill)
        weight = self.binarized_weight() if self.binary_weights else self.weight
        return F.conv2d(x, weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, binary_weights={self.binary_weights}, "
            f"binary_activations={self.binary_activations}"
        )

    def __prepare_scriptable__(self) -> nn.Module:
        raise _not_scriptable(self)


def set_binary_weights(model: nn.Module, enabled: bool) -> int:
    """Set ``binary_weights`` on every :class:`BinaryConv2d` in ``model``; returns how many were set."""
    count = 0
    for module in model.modules():
        if isinstance(module, BinaryConv2d):
            module.binary_weights = enabled
            count += 1
    return count
