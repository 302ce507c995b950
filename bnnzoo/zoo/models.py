"""The zoo's timm entry points: one per genotype file in ``genotypes/``, plus ``bnnzoo_genotype``.

Like a timm model file: ``default_cfgs`` holds each model's pretrained configs, the entry points
are thin and build through ``build_model_with_cfg``. The zoo entry points are generated from the
genotype files, so the files are the single list of zoo models.
``bnnzoo_genotype`` builds any genotype passed as text in ``genotype=``; a Hub ``config.json``
whose ``model_args`` carry the genotype rebuilds a searched model this way.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from timm.models import build_model_with_cfg, generate_default_cfgs, register_model, resolve_pretrained_cfg

from bnnzoo import dsl, weights
from bnnzoo._datasets import dataset_info
from bnnzoo._suggest import did_you_mean
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names
from bnnzoo.dsl.types import Genotype, LayerList
from bnnzoo.errors import ModelError

if TYPE_CHECKING:  # the builder loads when a model is built: registering the zoo stays light
    from bnnzoo.build.network import BinaryNet

GENERIC_ARCHITECTURE = "bnnzoo_genotype"
PAPER_ID = "doi:10.1109/WACV56688.2023.00244"
# Untrained configs carry the normalisation of the data their input shape suggests: Table 3's
# models are CIFAR-10 models (3 channels); 1-channel genotypes are Fashion-MNIST-like.
NORMALISATION = {info.input_shape[0]: (info.mean, info.std) for info in map(dataset_info, ("cifar10", "fashion_mnist"))}
_WEIGHTS_FILE = "weights.json"
# model -> its trained tags, the first being what pretrained=True without a tag loads.
TRAINED_TAGS: dict[str, list[str]] = {}


def default_normalisation(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Mean and std for an untrained config with ``channels`` input channels."""
    return NORMALISATION.get(channels, ((0.5,) * channels, (0.5,) * channels))


def _weights_file() -> dict[str, Any]:
    from importlib import resources

    return json.loads(resources.files(__package__).joinpath(_WEIGHTS_FILE).read_text(encoding="utf-8"))


def _published_weights() -> dict[str, dict[str, dict[str, Any]]]:
    """model -> tag -> timm pretrained-config fields (with ``hf_hub_id``) of the published weights."""
    return _weights_file()["models"]


def unpublished_tags() -> dict[str, dict[str, str]]:
    """model -> tag -> why: tags that are named (in the README) but have no weights to load."""
    return _weights_file().get("unpublished", {})


def check_tag(name: str, tag: str) -> None:
    """Raise :class:`ModelError` unless ``name.tag`` is a registered config: bnnzoo's "no trained
    weights" for a tag that is named but unpublished, a list of the tags for an unknown one."""
    import timm

    why = unpublished_tags().get(name, {}).get(tag)
    with_weights = timm.list_models(name, pretrained=True)
    available = ", ".join(with_weights) or "none yet"
    if why is not None:
        raise ModelError(f"'{name}.{tag}' has no trained weights: {why} (tags with weights: {available})")
    tags = [model.split(".", 1)[1] for model in timm.list_models(name, include_tags=True) if "." in model]
    if tag not in tags:
        tags += unpublished_tags().get(name, {})  # named ones too, for the suggestion
        raise ModelError(f"'{name}' has no tag '{tag}'{did_you_mean(tag, tags)}")


def pool_size(genotype: Genotype) -> tuple[int, int]:
    """The spatial size of ``forward_features`` at the genotype's input size (timm's ``pool_size``).

    Every strided layer is "same"-padded, so it rounds up: ``ceil(ceil(n / a) / b) == ceil(n / (a * b))``.
    """
    body = genotype.body
    if isinstance(body, LayerList):
        reduction = math.prod(getattr(layer, "stride", 1) for layer in body.layers)
    else:
        reduction = 2 ** len(body.reductions)
    reduction *= genotype.stem.stride
    _, height, width = genotype.input_shape
    return math.ceil(height / reduction), math.ceil(width / reduction)


def _cfg(genotype: Genotype | None = None, **overrides: Any) -> dict[str, Any]:
    channels, height, width = genotype.input_shape if genotype else (3, 32, 32)
    cfg = {
        "url": "",
        "input_size": (channels, height, width),
        "num_classes": genotype.num_classes if genotype else 10,
        "pool_size": pool_size(genotype) if genotype else None,
        "crop_pct": 1.0,
        "interpolation": "bilinear",
        "mean": default_normalisation(channels)[0],
        "std": default_normalisation(channels)[1],
        "first_conv": "stem.conv",
        "classifier": "fc",
        "paper_ids": PAPER_ID,
        "license": "apache-2.0",
    }
    return {**cfg, **overrides}


def _zoo_cfgs() -> dict[str, dict[str, Any]]:
    published = _published_weights()
    cfgs: dict[str, dict[str, Any]] = {}
    for name in zoo_genotype_names():
        genotype = zoo_genotype(name)
        # The untagged (default) config has no weights, so that create_model(name) keeps the genotype's
        # own input shape; trained tags follow (those shipped inside the package, then Hub-published ones),
        # each at the input size and class count it was trained for (which set timm's in_chans and num_classes).
        cfgs[f"{name}.untrained"] = _cfg(genotype)
        trained_cfgs = {**weights.shipped_cfgs(name), **published.get(name, {})}
        for tag, overrides in trained_cfgs.items():
            shape = tuple(overrides.get("input_size", genotype.input_shape))
            trained = dataclasses.replace(
                genotype, input_shape=shape, num_classes=overrides.get("num_classes", genotype.num_classes)
            )
            cfgs[f"{name}.{tag}"] = _cfg(trained, **overrides)
        if trained_cfgs:
            TRAINED_TAGS[name] = list(trained_cfgs)
    cfgs[f"{GENERIC_ARCHITECTURE}.untrained"] = _cfg()
    return cfgs


default_cfgs = generate_default_cfgs(_zoo_cfgs())
# timm makes the first tag with weights the default; the zoo keeps "untrained" first, so that
# create_model(name) is the genotype's own model (pretrained=True picks TRAINED_TAGS[name][0]).
for _name in TRAINED_TAGS:
    default_cfgs[_name].tags.remove("untrained")
    default_cfgs[_name].tags.appendleft("untrained")


# timm's feature wrapper over ``forward_intermediates``; ``None`` takes every tap of the model.
FEATURE_CFG = {"feature_cls": "getter", "out_indices": None}


def _create(variant: str, genotype: Genotype, pretrained: bool = False, **kwargs: Any) -> BinaryNet:
    from bnnzoo.build.network import BinaryNet

    if isinstance(kwargs.get("pretrained_cfg"), str):  # the tag of "name.tag"
        check_tag(variant, kwargs["pretrained_cfg"])
    if pretrained:
        if kwargs.get("pretrained_cfg") is None and TRAINED_TAGS.get(variant):
            kwargs["pretrained_cfg"] = TRAINED_TAGS[variant][0]  # no tag given: the first trained one
        cfg = resolve_pretrained_cfg(
            variant,
            pretrained_cfg=kwargs.get("pretrained_cfg"),
            pretrained_cfg_overlay=kwargs.get("pretrained_cfg_overlay"),
        )
        if not cfg.has_weights:
            raise ModelError(
                f"'{variant}' (tag '{cfg.tag}') has no trained weights; "
                "see bnnzoo.list_models(pretrained=True) for the tags that have them"
            )
        if cfg.file:
            weights.verify(cfg.file)  # a shipped file must match its sha256 before timm reads it
    return build_model_with_cfg(
        BinaryNet,
        variant,
        pretrained,
        genotype=genotype,
        feature_cfg=dict(FEATURE_CFG),
        pretrained_filter_fn=weights.packed_state_filter,
        **kwargs,
    )


def _zoo_entrypoint(name: str) -> Callable[..., BinaryNet]:
    def entrypoint(pretrained: bool = False, **kwargs: Any) -> BinaryNet:
        return _create(name, zoo_genotype(name), pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = name
    entrypoint.__doc__ = "\n".join(zoo_genotype(name).comments)
    return entrypoint


for _name in zoo_genotype_names():
    register_model(_zoo_entrypoint(_name))


@register_model
def bnnzoo_genotype(pretrained: bool = False, genotype: str | Genotype | None = None, **kwargs: Any) -> BinaryNet:
    """Any genotype, given as DSL text (as in a Hub config's ``model_args``) or a Genotype."""
    if genotype is None:
        raise ModelError("bnnzoo_genotype needs genotype=<genotype text>")
    if isinstance(genotype, str):
        genotype = dsl.parse(genotype, "<model_args.genotype>")
    if kwargs.get("pretrained_cfg") is None:  # no Hub config: the genotype sets shape and classes
        cfg = _cfg(genotype)
        shape = {key: cfg[key] for key in ("input_size", "num_classes", "pool_size", "mean", "std")}
        kwargs["pretrained_cfg_overlay"] = {**shape, **(kwargs.get("pretrained_cfg_overlay") or {})}
    return _create(GENERIC_ARCHITECTURE, genotype, pretrained, **kwargs)
