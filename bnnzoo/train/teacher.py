"""The knowledge-distillation teacher: a bnnzoo run's weights, or a timm model (pretrained or from a file).

``teacher`` is the path of a bnnzoo run's ``final.safetensors`` or ``checkpoint`` (its genotype is
built for the dataset and loads those weights), or a timm model name: with ``teacher_weights`` the
model is built for the dataset and loads that ``.safetensors`` file; without, timm's pretrained
weights, whose head must already have the dataset's classes. The teacher is frozen, in eval mode.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from bnnzoo import dsl
from bnnzoo._checkpoint import load_safetensors
from bnnzoo.errors import BnnzooError, ModelError
from bnnzoo.train.config import TrainConfig
from bnnzoo.trained import apply_weights, load_state_checked, load_trained_weights


def build_teacher(config: TrainConfig, num_classes: int, in_chans: int, device: torch.device) -> nn.Module:
    """The frozen teacher ``config.teacher`` names, on ``device``; a :class:`BnnzooError` if it cannot be made."""
    name = config.teacher
    assert name is not None
    path = Path(name).expanduser()
    if config.teacher_weights is None and (
        path.suffix in (".safetensors", ".json") or path.is_dir() or path.with_suffix(".json").is_file()
    ):
        teacher = _bnnzoo_teacher(name, path, num_classes, in_chans)
    else:
        teacher = _timm_teacher(config, num_classes, in_chans)
    teacher.to(device).eval()
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    return teacher


def _bnnzoo_teacher(name: str, path: Path, num_classes: int, in_chans: int) -> nn.Module:
    from bnnzoo.zoo import create_model

    weights = load_trained_weights(path)
    if weights.genotype is None:
        raise ModelError(
            f"teacher {name}: a plain weights file; give the teacher's timm name as the teacher "
            "and this file as its weights (--teacher NAME --teacher-weights FILE)"
        )
    teacher = create_model(dsl.parse(weights.genotype, f"{name}:genotype"), num_classes=num_classes, in_chans=in_chans)
    apply_weights(teacher, weights)
    return teacher


def _timm_teacher(config: TrainConfig, num_classes: int, in_chans: int) -> nn.Module:
    import timm

    name = config.teacher
    assert name is not None
    try:
        if config.teacher_weights is not None:
            weights_path = Path(config.teacher_weights).expanduser()
            if weights_path.suffix != ".safetensors":
                raise ModelError(f"teacher weights {weights_path}: only .safetensors files are loaded")
            teacher = timm.create_model(name, num_classes=num_classes, in_chans=in_chans)
            load_state_checked(teacher, load_safetensors(weights_path), f"{weights_path} (teacher {name})")
        else:
            cfg = _pretrained_cfg(name)
            classes = getattr(cfg, "num_classes", None)
            if classes and classes != num_classes:  # say so before any download
                raise ModelError(
                    f"teacher {name!r} predicts {classes} classes but {config.dataset} has "
                    f"{num_classes}; pass --teacher-weights FILE with weights trained on this dataset"
                )
            teacher = timm.create_model(name, pretrained=True, in_chans=in_chans)
    except BnnzooError:
        raise
    except Exception as exc:  # timm: unknown name, no network, missing weights...
        raise ModelError(f"cannot create teacher {name!r}: {exc}") from None
    classes = getattr(teacher, "num_classes", None)
    if classes is not None and classes != num_classes:
        raise ModelError(
            f"teacher {name!r} predicts {classes} classes but {config.dataset} has {num_classes}; "
            "pass --teacher-weights FILE with weights trained on this dataset"
        )
    return teacher


def _pretrained_cfg(name: str) -> Any:
    """timm's pretrained config of ``name`` (``None`` for Hub repos and unknown names)."""
    from timm.models import get_pretrained_cfg

    try:
        return get_pretrained_cfg(name, allow_unregistered=False)
    except Exception:  # unknown name or tag: timm.create_model reports it
        return None
