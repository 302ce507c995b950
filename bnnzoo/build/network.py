"""A binary network built from a genotype, following timm's model contract.

``BinaryNet`` has timm's interface: ``forward_features``, ``forward_head(pre_logits=...)``,
``reset_classifier``, ``get_classifier``, ``num_features``, ``feature_info``, ``drop_rate`` and
``forward_intermediates`` (which serves ``features_only=True``) and ``prune_intermediate_layers``.
Feature taps are the stem output and the end of every resolution stage. ``device`` and ``dtype``
place the model at construction, as timm's ``create_model(device=..., dtype=...)`` expects.

TorchScript is not supported (``torch.jit.script`` is deprecated in PyTorch, and the binary
layers' surrogate gradients are ``torch.autograd.Function`` s it cannot compile): scripting a
model raises :class:`~bnnzoo.errors.ModelError`. ``torch.compile``, ``torch.fx`` and ONNX export work.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext

import torch
from timm.layers import SelectAdaptivePool2d
from timm.models._features import feature_take_indices
from torch import nn

from bnnzoo import dsl
from bnnzoo._suggest import did_you_mean
from bnnzoo.build.cells import CellBody
from bnnzoo.build.layer_list import LayerListBody
from bnnzoo.build.units import RealStem
from bnnzoo.dsl.spaces import SHORTCUT_KINDS
from bnnzoo.dsl.types import Genotype, LayerList
from bnnzoo.errors import ModelError

_POOL_TYPES = {"avgpool": "avg", "maxpool": "max"}


def _global_pool(pool_type: str) -> SelectAdaptivePool2d:
    """timm's pooling; ``""`` keeps the feature map (no pooling, no flattening), as in timm."""
    return SelectAdaptivePool2d(pool_type=pool_type, flatten=bool(pool_type))


class BinaryNet(nn.Module):
    """A binary network: real stem, binary body, real pooling and classifier."""

    def __init__(
        self,
        genotype: Genotype | str,
        num_classes: int | None = None,
        in_chans: int | None = None,
        drop_rate: float = 0.0,
        global_pool: str | None = None,
        shortcut: str | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if isinstance(genotype, str):
            genotype = dsl.parse(genotype, "<model_args.genotype>")
        if shortcut is not None and shortcut not in SHORTCUT_KINDS:
            raise ModelError(f"unknown shortcut '{shortcut}'{did_you_mean(shortcut, SHORTCUT_KINDS)}")
        if shortcut is not None and genotype.space == "mbconv":
            genotype = dataclasses.replace(genotype, shortcut=shortcut)  # model.genotype is what was built
        self.genotype = genotype
        self.num_classes = genotype.num_classes if num_classes is None else num_classes
        self.in_chans = genotype.input_shape[0] if in_chans is None else in_chans
        self.drop_rate = drop_rate
        self.shortcut = shortcut or genotype.shortcut

        stem = genotype.stem
        with torch.device(device) if device is not None else nullcontext():
            self.stem = RealStem(self.in_chans, stem.channels, stem.kernel, stem.stride)
            if isinstance(genotype.body, LayerList):
                self.body: LayerListBody | CellBody = LayerListBody(genotype.body, stem.channels, self.shortcut)
            else:
                self.body = CellBody(genotype.body, stem.channels)
            self.num_features = self.head_hidden_size = self.body.out_channels
            pool_type = global_pool if global_pool is not None else _POOL_TYPES[genotype.head.pool]
            self.global_pool = _global_pool(pool_type)
            self.head_drop = nn.Dropout(drop_rate)
            self.fc = _classifier(self.num_features, self.num_classes)
        if dtype is not None:
            self.to(dtype=dtype)
        self.feature_info = [dict(num_chs=stem.channels, reduction=stem.stride, module="stem")] + [
            dict(num_chs=channels, reduction=stem.stride * reduction, module=self.body.tap_module(tap))
            for tap, (channels, reduction) in enumerate(zip(self.body.tap_channels, self.body.tap_reductions))
        ]

    # -- timm's classifier interface ---------------------------------------------------------

    def get_classifier(self) -> nn.Module:
        return self.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """A new ``num_classes`` head (and pooling) on the model's device and dtype, in its train/eval mode."""
        like = self.stem.conv.weight
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = _global_pool(global_pool).train(self.training)
        self.fc = _classifier(self.num_features, num_classes, like.device, like.dtype).train(self.training)

    # -- forward -----------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x, _ = self.body(self.stem(x))
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.global_pool(x))
        return x if pre_logits else self.fc(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """Return the feature maps at ``indices`` of ``feature_info`` (and the final features)."""
        if output_fmt != "NCHW":
            raise ModelError("bnnzoo models produce NCHW feature maps only")
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        x = self.stem(x)
        intermediates = [x] if 0 in take else []
        body_take = {index - 1 for index in take if index > 0}
        stop = max_index - 1 if (stop_early or intermediates_only) else None
        if stop is None or stop >= 0:
            x, features = self.body(x, body_take, stop)
            intermediates += features
        if intermediates_only:
            return intermediates
        return x, intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last tap in ``indices`` (so ``forward_features`` ends there) and,
        with ``prune_head``, the pooling and classifier; return the normalised indices. The model has
        no final norm, so ``prune_norm`` changes nothing."""
        take, max_index = feature_take_indices(len(self.feature_info), indices)
        # Tap 0 is the stem output (no block kept); tap k > 0 is the output of body block taps[k - 1].
        keep = 0 if max_index == 0 else self.body.taps[max_index - 1] + 1
        _truncate(self.body, keep)
        if prune_head:
            self.reset_classifier(0, "")
        return take

    def __prepare_scriptable__(self) -> nn.Module:
        raise _not_scriptable()


def _classifier(
    num_features: int, num_classes: int, device: torch.device | None = None, dtype: torch.dtype | None = None
) -> nn.Module:
    return nn.Linear(num_features, num_classes, device=device, dtype=dtype) if num_classes > 0 else nn.Identity()


def _truncate(body: nn.Module, keep: int) -> None:
    """Keep the first ``keep`` blocks (or cells) of a body; the forward runs whatever is left."""
    for name in ("blocks", "cells"):
        if hasattr(body, name):
            setattr(body, name, getattr(body, name)[:keep])
            return
    raise ModelError(f"cannot prune a {type(body).__name__}")


def _not_scriptable() -> ModelError:
    return ModelError(
        "bnnzoo models cannot be compiled with TorchScript (torch.jit.script is deprecated in PyTorch, "
        "and the binary layers' surrogate gradients are autograd Functions it cannot compile); "
        "use torch.compile, torch.fx, torch.export or ONNX export instead"
    )
