"""Stage a Hub repository folder for a model: config.json, weights, genotype, diagram, model card.

The folder follows timm's Hub conventions (``timm.models.save_for_hf``): ``config.json`` names the
architecture ``bnnzoo_genotype`` and carries the genotype text in ``model_args``, so that after
``import bnnzoo`` both ``timm.create_model("hf-hub:ORG/NAME", pretrained=True)`` and
``timm.create_model("local-dir:FOLDER", pretrained=True)`` rebuild the model and load
``model.safetensors``. Every file is written atomically.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from bnnzoo._atomic import atomic_path, atomic_write_text
from bnnzoo.build.binary import BinaryConv2d
from bnnzoo.build.network import BinaryNet
from bnnzoo.dsl.types import Genotype
from bnnzoo.errors import HubError, ModelError
from bnnzoo.hub.repo_id import check_repo_id

__all__ = ["hub_config", "stage_repo"]

_DATA_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def _pool_type(model: BinaryNet) -> str | None:
    pool = getattr(model.global_pool, "pool_type", None)
    return pool if isinstance(pool, str) and pool else None


def _normalisation(
    model: BinaryNet, dataset: str | None, data_config: Mapping[str, Any] | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std: ``data_config``, else the dataset's, else the model's config, else the zoo default."""
    from bnnzoo.zoo.models import default_normalisation

    channels = model.in_chans
    candidates: list[tuple[Any, Any]] = []
    if data_config and "mean" in data_config and "std" in data_config:
        candidates.append((data_config["mean"], data_config["std"]))
    if dataset:
        try:
            from bnnzoo._datasets import dataset_info

            info = dataset_info(dataset)
            candidates.append((info.mean, info.std))
        except Exception:  # an unknown dataset name, or no training module: fall through
            pass
    cfg = getattr(model, "pretrained_cfg", None) or {}
    if cfg.get("mean") is not None and cfg.get("std") is not None:
        candidates.append((cfg["mean"], cfg["std"]))
    for mean, std in candidates:
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(mean) == channels and len(std) == channels:
            return mean, std
    return default_normalisation(channels)


def staged_genotype(model: BinaryNet, data_config: Mapping[str, Any] | None = None) -> Genotype:
    """The model's genotype with the input shape and classes it was trained for: ``in_chans``, the
    height and width of ``data_config["input_size"]`` (else the genotype's) and ``num_classes``.
    When they differ from the genotype file's, a comment line says so (its figures are the file's)."""
    genotype = model.genotype
    _, height, width = genotype.input_shape
    if data_config and data_config.get("input_size") is not None:
        size = tuple(int(v) for v in data_config["input_size"])
        if len(size) != 3 or size[0] != model.in_chans:
            raise HubError(f"data_config input_size {size} must be (C, H, W) with C = in_chans = {model.in_chans}")
        _, height, width = size
    shape, classes = (int(model.in_chans), height, width), int(model.num_classes)
    if (shape, classes) == (genotype.input_shape, genotype.num_classes):
        return genotype
    note = (
        f"Staged for input {_shape_text(shape)} and {classes} classes, as trained; the genotype file "
        f"'{genotype.name}' has input {_shape_text(genotype.input_shape)} and {genotype.num_classes} classes."
    )
    comments = (*genotype.comments, "", note) if genotype.comments else (note,)
    return dataclasses.replace(genotype, input_shape=shape, num_classes=classes, comments=comments)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape))


def hub_config(
    model: BinaryNet,
    *,
    dataset: str | None = None,
    data_config: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
) -> dict[str, Any]:
    """timm's ``config.json`` for ``model``: architecture ``bnnzoo_genotype``, the staged genotype
    (:func:`staged_genotype`) in ``model_args``."""
    from bnnzoo.dsl import to_text
    from bnnzoo.zoo.models import GENERIC_ARCHITECTURE, PAPER_ID, pool_size

    data_config = dict(data_config or {})
    unknown = set(data_config) - set(_DATA_KEYS)
    if unknown:
        raise HubError(f"unknown data_config keys: {', '.join(sorted(unknown))} (known: {', '.join(_DATA_KEYS)})")
    genotype = staged_genotype(model, data_config)
    _, height, width = genotype.input_shape
    mean, std = _normalisation(model, dataset, data_config)
    pool = _pool_type(model)
    model_args: dict[str, Any] = {
        "genotype": to_text(genotype),
        "num_classes": int(model.num_classes),
        "in_chans": int(model.in_chans),
    }
    if pool is not None:
        model_args["global_pool"] = pool
    if model.shortcut != genotype.shortcut:
        model_args["shortcut"] = model.shortcut
    pretrained_cfg = {
        "tag": dataset or "bnnzoo",
        "custom_load": False,
        "input_size": [int(model.in_chans), int(height), int(width)],
        "fixed_input_size": False,
        "interpolation": str(data_config.get("interpolation", "bilinear")),
        "crop_pct": float(data_config.get("crop_pct", 1.0)),
        "crop_mode": str(data_config.get("crop_mode", "center")),
        "mean": list(mean),
        "std": list(std),
        "num_classes": int(model.num_classes),
        "pool_size": list(pool_size(genotype)),
        "first_conv": "stem.conv",
        "classifier": "fc",
        "license": license,
        "paper_ids": PAPER_ID,
    }
    config: dict[str, Any] = {
        "architecture": GENERIC_ARCHITECTURE,
        "num_classes": int(model.num_classes),
        "num_features": int(model.num_features),
    }
    if pool is not None:
        config["global_pool"] = pool
    config["model_args"] = model_args
    config["pretrained_cfg"] = pretrained_cfg
    return config


def _op_counts(
    model: BinaryNet, genotype: Genotype, input_size: tuple[int, ...]
) -> tuple[dict[str, Any], dict[str, Any] | str | None]:
    """The model's op counts at its input, and the comparison with the paper's Table 3.

    The paper counts its models at the zoo genotype's input and class count. At that shape the
    model's own counts are compared directly (``info`` carries the published row; second value
    None). At another shape the same genotype is profiled again at the paper's shape for the
    comparison (second value: that info). A genotype named like a Table 3 model but built
    differently from the zoo's is not compared (second value: why).
    """
    from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names
    from bnnzoo.profile import profile, published_row
    from bnnzoo.profile.report import info_dict

    result = profile(model, input_size)
    row = published_row(genotype.name)
    if row is None or genotype.name not in zoo_genotype_names():
        return info_dict(genotype.name, genotype.space, result, row), None
    paper = zoo_genotype(genotype.name)
    as_paper = dataclasses.replace(genotype, input_shape=paper.input_shape, num_classes=paper.num_classes)
    if as_paper != paper:
        why = (
            f"This genotype is named like the paper's {row.model} but differs from bnnzoo's '{paper.name}', "
            "so its op counts are not compared with the paper's."
        )
        return info_dict(genotype.name, genotype.space, result, None), why
    if tuple(input_size) == paper.input_shape and model.num_classes == paper.num_classes:
        return info_dict(genotype.name, genotype.space, result, row), None
    at_paper_shape = profile(paper)
    return info_dict(genotype.name, genotype.space, result, None), info_dict(
        paper.name, paper.space, at_paper_shape, row
    )


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "model"


def _write_diagram(model: BinaryNet, folder: Path, stem: str) -> tuple[str | None, str | None, str | None]:
    """Render ``<stem>.svg``; return (image file, note for the card, file written)."""
    try:
        from bnnzoo.draw import GraphvizMissingError, draw_genotype, render
    except ImportError as exc:
        return None, f"No diagram: bnnzoo's drawing module is unavailable ({exc}).", None
    stale = [folder / f"{stem}.svg", folder / f"{stem}.dot"]
    try:
        graph = draw_genotype(model.genotype)
        render(graph, folder / f"{stem}.svg", "svg")
    except GraphvizMissingError as error:
        written = [path.name for path in error.written]
        _remove(path for path in stale if path.name not in written)
        note = "No rendered diagram: Graphviz's `dot` was not available when this folder was staged"
        if written:
            note += f"; the diagram's DOT source is in `{written[0]}` (render it with `dot -Tsvg`)."
            return None, note, written[0]
        return None, note + ".", None
    _remove([folder / f"{stem}.dot"])
    return f"{stem}.svg", None, f"{stem}.svg"


def _remove(paths) -> None:
    for path in paths:
        if path.is_file():
            path.unlink()


def stage_repo(
    model: torch.nn.Module,
    out_dir: str | os.PathLike,
    *,
    metrics: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    repo_id: str | None = None,
    data_config: Mapping[str, Any] | None = None,
    license: str = "apache-2.0",
    packed: bool = False,
) -> Path:
    """Write a Hub repository folder for ``model`` (a :class:`BinaryNet`) into ``out_dir``; return it.

    Files: ``config.json`` (timm's format), ``model.safetensors`` (the state dict), ``<name>.bnn``
    (the genotype), ``<name>.svg`` (the diagram; ``<name>.dot`` and a note in the card when
    Graphviz's ``dot`` is missing), ``README.md`` (the model card) and, with ``packed=True``,
    ``<name>.packed.safetensors`` (:mod:`bnnzoo.export.packed`). ``metrics`` (top-1 under ``top1``,
    ``acc1``, ``accuracy`` or ``test_top1``, as a fraction like bnnzoo's trainer writes it; a value above 1
    is read as a percentage), ``dataset`` and ``recipe`` go into the card; ``repo_id``
    (``ORG/NAME``) into its usage snippets. ``data_config`` may set ``input_size``, ``mean``, ``std``,
    ``interpolation``, ``crop_pct``, ``crop_mode`` for ``pretrained_cfg``; mean and std otherwise come from
    the dataset when bnnzoo knows it. Other files already in ``out_dir`` are left alone.
    """
    from bnnzoo.dsl import dump
    from bnnzoo.hub.card import model_card

    if not isinstance(model, BinaryNet):
        raise ModelError(f"stage_repo needs a bnnzoo BinaryNet (built from a genotype), got {type(model).__name__}")
    off = [
        name
        for name, module in model.named_modules()
        if isinstance(module, BinaryConv2d) and not (module.binary_weights and module.binary_activations)
    ]
    if off:
        raise ModelError(
            f"{len(off)} binary convolution(s) run with binary weights or activations off (e.g. {off[0]}; "
            "step 1 of two-step training): a Hub config cannot express that, so timm would load a different "
            "model; publish fully binary weights (a step-2 or final checkpoint)"
        )
    if repo_id is not None:
        check_repo_id(repo_id)
    folder = Path(out_dir)
    if folder.exists() and not folder.is_dir():
        raise HubError(f"{folder}: exists and is not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    genotype = staged_genotype(model, data_config)
    stem = _safe_name(genotype.name)
    config = hub_config(model, dataset=dataset, data_config=data_config, license=license)

    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": "pt"})
    files = {"config.json": "timm model config (architecture, genotype in model_args, preprocessing)"}
    files["model.safetensors"] = "the weights (state dict of the timm model, float32 latent weights)"
    dump(genotype, folder / f"{stem}.bnn")
    files[f"{stem}.bnn"] = "the genotype in bnnzoo's DSL"
    if packed:
        from bnnzoo.export.packed import export_packed

        export_packed(model, folder / f"{stem}.packed.safetensors")
        files[f"{stem}.packed.safetensors"] = "binary weights as packed sign bits (format bnnzoo.packed/1)"
    diagram, note, diagram_file = _write_diagram(model, folder, stem)
    if diagram_file:
        files[diagram_file] = "architecture diagram" if diagram else "architecture diagram (Graphviz DOT source)"
    files["README.md"] = "this model card"

    input_size = tuple(config["pretrained_cfg"]["input_size"])
    info, paper_info = _op_counts(model, genotype, input_size)
    title = repo_id.split("/")[1] if repo_id else genotype.name
    card = model_card(
        genotype,
        info,
        paper_info=paper_info,
        title=title,
        repo_id=repo_id,
        num_classes=model.num_classes,
        in_chans=model.in_chans,
        input_size=input_size,
        metrics=metrics,
        dataset=dataset,
        recipe=recipe,
        diagram=diagram,
        diagram_note=note,
        files=files,
        license=license,
    )
    atomic_write_text(folder / "README.md", card)
    # config.json last: a folder with a config is complete.
    atomic_write_text(folder / "config.json", json.dumps(config, indent=2) + "\n")
    return folder
