"""Loading published models: ``hf-hub:ORG/NAME`` and ``local-dir:PATH``, with clear errors.

:func:`create_from_hub` is what ``bnnzoo.create_model`` runs for a Hub or folder source. A repository
is written by a stranger, so nothing is built before it is checked:

1. one request (no retries) tells whether the Hub can be reached; if not, huggingface_hub reads only
   its cache for the rest of the load, so a closed port fails at once instead of in its retries;
2. ``config.json`` is checked against the genotype's bounds (:func:`read_config`): the architecture,
   every ``model_args`` key and value, ``num_classes``, ``input_size``, the genotype text;
3. with ``pretrained=True``, the tensor shapes in the header of ``model.safetensors`` are compared
   with a model built on the ``meta`` device (no memory), including the classifier and the stem that
   timm would reset or adapt;

then timm builds and loads the model exactly as ``timm.create_model(source, pretrained=...)`` does.
Every problem is a :class:`~bnnzoo.errors.HubError` (reaching the Hub, ``config.json``), a
:class:`~bnnzoo.errors.WeightsError` (``model.safetensors``) or a :class:`~bnnzoo.errors.GenotypeError`
(the genotype text), naming the file and the fix.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnzoo.errors import BnnzooError, HubError, ModelError, WeightsError
from bnnzoo.hub.repo_id import is_repo_id

__all__ = ["HubSource", "create_from_hub", "hub_error", "load_pretrained", "read_config"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_CONFIG_BYTES = 1 << 20
"""A bnnzoo config.json, genotype text included, is a few kB; a larger one is refused unread."""
PROBE_TIMEOUT_S = 5.0
"""The longest the one reachability request waits (huggingface_hub's HF_HUB_ETAG_TIMEOUT when lower)."""
_PREFIXES = {"hf-hub:": "hf-hub", "hf_hub:": "hf-hub", "local-dir:": "local-dir"}


@dataclass(frozen=True)
class HubSource:
    """Where a published model lives: ``kind`` is ``"hf-hub"`` or ``"local-dir"``."""

    kind: str
    location: str  # "ORG/NAME" or a folder path
    revision: str | None = None

    @classmethod
    def parse(cls, name: str | os.PathLike) -> HubSource:
        """Parse ``hf-hub:ORG/NAME[@REV]``, ``local-dir:PATH``, or a plain existing folder."""
        text = os.fspath(name)
        for prefix, kind in _PREFIXES.items():
            if text.startswith(prefix):
                rest = text[len(prefix) :]
                if not rest:
                    raise HubError(f"'{text}': nothing after '{prefix}' (expected {prefix}ORG/NAME or a folder)")
                if kind == "hf-hub":
                    repo, _, revision = rest.partition("@")
                    if not is_repo_id(repo):
                        raise HubError(f"'{text}': a Hub repository is named hf-hub:ORG/NAME[@REVISION]")
                    return cls(kind, repo, revision or None)
                return cls(kind, rest)
        if Path(text).is_dir():
            return cls("local-dir", text)
        raise HubError(f"'{text}': expected hf-hub:ORG/NAME, local-dir:PATH or an existing folder")

    @property
    def spec(self) -> str:
        """The name timm understands: ``hf-hub:ORG/NAME[@REV]`` or ``local-dir:PATH``."""
        revision = f"@{self.revision}" if self.revision else ""
        return f"{self.kind}:{self.location}{revision}"

    def file(self, filename: str) -> str:
        """How a file of this source is named in messages."""
        if self.kind == "local-dir":
            return str(Path(self.location) / filename)
        return f"{self.spec}/{filename}"


# -- errors ------------------------------------------------------------------------------------


def _hub_exceptions() -> dict[str, type[BaseException]]:
    import huggingface_hub.errors as errors

    names = (
        "OfflineModeIsEnabled",
        "LocalEntryNotFoundError",
        "GatedRepoError",
        "RepositoryNotFoundError",
        "RevisionNotFoundError",
        "EntryNotFoundError",
        "HfHubHTTPError",
        "HFValidationError",
    )
    return {name: getattr(errors, name) for name in names if hasattr(errors, name)}


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(getattr(constants, "ENDPOINT", "https://huggingface.co"))


def _is_network_error(exc: BaseException) -> bool:
    """A failure to talk to the server at all (refused, reset, timed out), not an answer from it."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, (HfHubHTTPError, OfflineModeIsEnabled)):  # both are OSErrors too
        return False
    module = type(exc).__module__.split(".")[0]
    return module in ("httpx", "httpx2", "httpcore", "requests", "urllib3") or isinstance(exc, OSError)


def _detail(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def hub_error(
    exc: BaseException, source: HubSource | str, what: str = "", unreachable: str | None = None
) -> BnnzooError | None:
    """A :class:`HubError` explaining a huggingface_hub exception, or None if ``exc`` is not one.

    ``unreachable`` is why the Hub could not be reached, when this load reads only the cache for that reason.
    """
    kinds = _hub_exceptions()
    where = source.spec if isinstance(source, HubSource) else str(source)
    repo = source.location if isinstance(source, HubSource) else where
    about = f"{where}{f' ({what})' if what else ''}"
    detail = _detail(exc)

    def isa(*names: str) -> bool:
        return any(name in kinds and isinstance(exc, kinds[name]) for name in names)

    if isa("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        if _offline() and unreachable is None:
            return HubError(
                f"{about}: not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it. "
                f"Go online (unset HF_HUB_OFFLINE) or download it beforehand while online, e.g. "
                f"`hf download {repo}` or huggingface_hub.snapshot_download('{repo}')"
            )
        return HubError(
            f"{about}: cannot reach the Hub at {_endpoint()} and the file is not in the local cache "
            f"({unreachable or detail}); check the network connection and HF_ENDPOINT"
        )
    if isa("GatedRepoError"):
        return HubError(f"{about}: {repo} is gated: accept its terms on the Hub, then log in (`hf auth login`)")
    if isa("RepositoryNotFoundError"):
        return HubError(
            f"{about}: repository {repo} not found at {_endpoint()} (or a file in it is missing); check the name, "
            "and log in (`hf auth login` or HF_TOKEN) if it is private"
        )
    if isa("RevisionNotFoundError"):
        return HubError(f"{about}: revision {getattr(source, 'revision', None)!r} of {repo} not found ({detail})")
    if isa("EntryNotFoundError"):
        return HubError(f"{about}: file not found in {repo}: is it a model published by bnnzoo or timm? ({detail})")
    if isa("HFValidationError"):
        return HubError(f"{about}: invalid repository id: {detail}")
    if isa("HfHubHTTPError"):
        return HubError(f"{about}: the Hub answered with an error: {detail}")
    if type(exc).__module__.split(".")[0] == "huggingface_hub" or _is_network_error(exc):
        return HubError(f"{about}: cannot talk to the Hub at {_endpoint()}: {type(exc).__name__}: {detail}")
    return None


# -- reaching the Hub ----------------------------------------------------------------------------


def _unreachable(source: HubSource) -> str | None:
    """Why the Hub cannot be reached, from one HEAD request without retries; None when it answers.

    huggingface_hub retries a connection failure five times (23 s of back-off) when the file is not
    cached; this one request finds out first.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url

    if source.kind != "hf-hub" or _offline():
        return None
    url = hf_hub_url(source.location, CONFIG_NAME, revision=source.revision)
    try:
        get_hf_file_metadata(url, timeout=min(PROBE_TIMEOUT_S, constants.HF_HUB_ETAG_TIMEOUT))
    except Exception as exc:
        if _is_network_error(exc):
            return f"{type(exc).__name__}: {_detail(exc)}"
    return None  # the Hub answered, maybe with an error that the download itself reports


@contextlib.contextmanager
def _reaching(source: HubSource) -> Iterator[str | None]:
    """Probe the Hub once; when it cannot be reached, huggingface_hub reads only its cache in the block.

    Yields why the Hub cannot be reached, or None. Offline mode is huggingface_hub's own switch
    (``constants.HF_HUB_OFFLINE``, read on every request); it is restored afterwards.
    """
    reason = _unreachable(source)
    if reason is None:
        yield None
        return
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield reason
    finally:
        constants.HF_HUB_OFFLINE = saved


def _fetch(
    source: HubSource, filename: str, cache_dir: str | os.PathLike | None = None, unreachable: str | None = None
) -> Path:
    if source.kind == "local-dir":
        folder = Path(source.location)
        if not folder.is_dir():
            raise HubError(f"{source.spec}: no such folder")
        path = folder / filename
        if not path.is_file():
            raise HubError(
                f"{path}: missing; a model folder holds config.json and model.safetensors "
                "(as written by `bnnzoo publish` or timm's save_for_hf)"
            )
        return path
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(source.location, filename, revision=source.revision, cache_dir=cache_dir))
    except Exception as exc:
        error = hub_error(exc, source, filename, unreachable)
        if error is None:
            raise
        raise error from None


# -- config.json ---------------------------------------------------------------------------------

# timm's global pooling kinds (timm.layers.SelectAdaptivePool2d) that keep the feature count; "" keeps the
# feature map. The concatenating kinds (catavgmax) double it, which BinaryNet's classifier does not follow.
GLOBAL_POOLS = ("", "avg", "max", "avgmax", "fast", "fastavg", "fastmax", "fastavgmax")
# pretrained_cfg keys that would make timm read weights from elsewhere than model.safetensors.
_WEIGHT_SOURCES = ("url", "file", "state_dict")


def _model_arg_names() -> tuple[str, ...]:
    """The keyword arguments of the model class that shape it: what ``model_args`` may hold
    (``device`` and ``dtype`` only place it)."""
    from bnnzoo.build.network import BinaryNet

    parameters = inspect.signature(BinaryNet.__init__).parameters
    return tuple(name for name in parameters if name not in ("self", "device", "dtype"))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _arg_problem(key: str, value: Any) -> str | None:
    """What is wrong with the model argument ``key=value`` (bounds as for a genotype), or None."""
    from bnnzoo.dsl import spaces

    bounds = {"num_classes": (0, spaces.MAX_CLASSES), "in_chans": (1, spaces.MAX_INPUT_CHANNELS)}
    if key in bounds:
        low, high = bounds[key]
        if not _is_int(value) or not low <= value <= high:
            return f"{key} must be a whole number from {low} to {high}, got {value!r}"
    elif key == "global_pool":
        if not isinstance(value, str) or value.lower() not in GLOBAL_POOLS:
            return f"global_pool must be one of {', '.join(map(repr, GLOBAL_POOLS))}, got {value!r}"
    elif key == "shortcut":
        if value is not None and value not in spaces.SHORTCUT_KINDS:
            return f"shortcut must be one of {', '.join(spaces.SHORTCUT_KINDS)}, got {value!r}"
    elif key == "drop_rate":
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
            return f"drop_rate must be a number from 0 up to (not including) 1, got {value!r}"
    elif key == "genotype" and not isinstance(value, str):
        return "genotype must be the genotype text"
    return None


def _input_size_problem(value: Any) -> str | None:
    from bnnzoo.dsl import spaces

    limits = (spaces.MAX_INPUT_CHANNELS, spaces.MAX_INPUT_SIZE, spaces.MAX_INPUT_SIZE)
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        return f"pretrained_cfg.input_size must be [channels, height, width], got {value!r}"
    if not all(_is_int(v) and 1 <= v <= limit for v, limit in zip(value, limits)):
        return f"pretrained_cfg.input_size must be 1..{limits[0]} channels and 1..{limits[1]} pixels, got {value!r}"
    return None


_FIX = f"fix {CONFIG_NAME}, or publish the model again with `bnnzoo publish`"


def _check_config(config: Any, name: str) -> None:
    """Raise a HubError naming ``name`` (the config.json) for the first problem in ``config``;
    a GenotypeError for a broken genotype text."""
    from bnnzoo import dsl
    from bnnzoo.zoo.models import GENERIC_ARCHITECTURE

    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise HubError(f"{name}: no 'architecture'; not a timm model config")
    args = config.get("model_args", {})
    _check_model_args(config["architecture"], args, name)
    pretrained_cfg = config.get("pretrained_cfg", {})
    _check_pretrained_cfg(pretrained_cfg, name)
    for prefix, value in (("", config.get("num_classes")), ("pretrained_cfg.", pretrained_cfg.get("num_classes"))):
        if value is not None and (problem := _arg_problem("num_classes", value)):
            raise HubError(f"{name}: {prefix}{problem}; {_FIX}")
    if config["architecture"] == GENERIC_ARCHITECTURE:
        if "genotype" not in args:
            raise HubError(f"{name}: architecture {GENERIC_ARCHITECTURE} needs model_args.genotype (genotype text)")
        dsl.parse(args["genotype"], f"{name} (model_args.genotype)")


def _check_model_args(architecture: str, args: Any, name: str) -> None:
    from bnnzoo.dsl.library import zoo_genotype_names
    from bnnzoo.zoo.models import GENERIC_ARCHITECTURE

    if architecture != GENERIC_ARCHITECTURE and architecture not in zoo_genotype_names():
        raise HubError(
            f"{name}: architecture '{architecture}' is not a bnnzoo model (expected {GENERIC_ARCHITECTURE} or a zoo "
            "name); load other timm models with timm.create_model"
        )
    if not isinstance(args, dict):
        raise HubError(f"{name}: 'model_args' must be an object; {_FIX}")
    known = [key for key in _model_arg_names() if key != "genotype" or architecture == GENERIC_ARCHITECTURE]
    unknown = sorted(set(args) - set(known))
    if unknown:
        raise HubError(
            f"{name}: unknown model_args key(s) {', '.join(map(repr, unknown))} (known: {', '.join(known)}); "
            f"remove them from {CONFIG_NAME}"
        )
    for key, value in args.items():
        if problem := _arg_problem(key, value):
            raise HubError(f"{name}: model_args.{problem}; {_FIX}")


def _check_pretrained_cfg(pretrained_cfg: Any, name: str) -> None:
    from timm.models import PretrainedCfg

    if not isinstance(pretrained_cfg, dict):
        raise HubError(f"{name}: 'pretrained_cfg' must be an object; {_FIX}")
    unknown = sorted(set(pretrained_cfg) - {field.name for field in dataclasses.fields(PretrainedCfg)})
    if unknown:
        raise HubError(f"{name}: unknown keys in pretrained_cfg: {', '.join(unknown)}")
    if "input_size" in pretrained_cfg and (problem := _input_size_problem(pretrained_cfg["input_size"])):
        raise HubError(f"{name}: {problem}; {_FIX}")
    elsewhere = [key for key in _WEIGHT_SOURCES if pretrained_cfg.get(key)]
    if pretrained_cfg.get("custom_load"):
        elsewhere.append("custom_load")
    if pretrained_cfg.get("hf_hub_filename") not in (None, WEIGHTS_NAME):
        elsewhere.append("hf_hub_filename")
    if elsewhere:
        raise HubError(
            f"{name}: pretrained_cfg.{elsewhere[0]} points timm at other weights; a bnnzoo model's weights are its "
            f"{WEIGHTS_NAME}: remove the key from {CONFIG_NAME}"
        )
    for key, module in (("first_conv", "stem.conv"), ("classifier", "fc")):
        if pretrained_cfg.get(key, module) != module:
            raise HubError(f"{name}: pretrained_cfg.{key} must be '{module}' for a bnnzoo model; {_FIX}")


def _read_config(source: HubSource, cache_dir: str | os.PathLike | None, unreachable: str | None) -> dict[str, Any]:
    path = _fetch(source, CONFIG_NAME, cache_dir, unreachable)
    name = source.file(CONFIG_NAME)
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise HubError(
            f"{name}: {size} bytes, over the {MAX_CONFIG_BYTES} a model config may have; not a bnnzoo config"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HubError(f"{name}: not valid JSON: {exc}") from None
    _check_config(config, name)
    return config


def read_config(source: HubSource | str, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fetch ``config.json`` and check it against the genotype's bounds; a broken genotype text raises
    :class:`GenotypeError` located in ``<source>/config.json (model_args.genotype):LINE:COL``."""
    source = source if isinstance(source, HubSource) else HubSource.parse(source)
    with _reaching(source) as unreachable:
        return _read_config(source, cache_dir, unreachable)


# -- model.safetensors ---------------------------------------------------------------------------

_REPUBLISH = "stage the folder again"
_REDOWNLOAD = (
    "the published file is broken, or the cached copy is: download it again with force_download=True or clear the cache"
)
_SHOWN = 5  # tensors named in one message


def _tensor_shapes(path: Path, source: HubSource) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor in a safetensors file, from its header (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        fix = _REPUBLISH if source.kind == "local-dir" else _REDOWNLOAD
        raise WeightsError(
            f"{source.file(WEIGHTS_NAME)}: not a valid safetensors file (truncated or corrupt): {exc}; {fix}"
        ) from None


def _meta_model(source: HubSource, kwargs: Mapping[str, Any]):
    """The model timm would build, on the meta device: its shapes and resolved config, no memory."""
    import timm
    import torch

    keep = {*_model_arg_names(), "cache_dir", "pretrained_cfg_overlay"}
    with torch.device("meta"):
        return timm.create_model(source.spec, pretrained=False, **{k: v for k, v in kwargs.items() if k in keep})


def _check_weights(source: HubSource, shapes: dict[str, tuple[int, ...]], model: Any, explicit: Mapping) -> None:
    """Raise a WeightsError unless timm would load every tensor of ``shapes`` into ``model`` unchanged,
    apart from the classifier and stem that an explicit ``num_classes=`` / ``in_chans=`` resets or adapts."""
    weights, config = source.file(WEIGHTS_NAME), source.file(CONFIG_NAME)
    cfg = model.pretrained_cfg
    expected = {key: tuple(tensor.shape) for key, tensor in model.state_dict().items()}
    weight_classes = shapes["fc.weight"][0] if "fc.weight" in shapes else 0
    declared_classes = cfg.get("num_classes")
    if model.num_classes != declared_classes:  # timm drops the classifier of the weights
        if "num_classes" not in explicit:
            raise WeightsError(
                f"{config}: the classifier would be re-initialised at random: the model gets "
                f"num_classes={model.num_classes} (model_args) but the weights are declared with {declared_classes} "
                f"classes (num_classes, pretrained_cfg.num_classes; {weights} has {weight_classes}). Make them "
                f"agree in {CONFIG_NAME}, or pass num_classes={model.num_classes} explicitly to train a new classifier"
            )
        shapes = {key: shape for key, shape in shapes.items() if not key.startswith("fc.")}
        expected = {key: shape for key, shape in expected.items() if not key.startswith("fc.")}
    stem = "stem.conv.weight"
    declared_chans = cfg["input_size"][0]
    if stem in shapes and stem in expected and shapes[stem] != expected[stem]:
        weight_chans = shapes[stem][1] if len(shapes[stem]) == 4 else None
        if weight_chans != declared_chans:
            raise WeightsError(
                f"{weights}: the stem takes {weight_chans} input channels but {config} declares {declared_chans} "
                f"(model_args.in_chans, pretrained_cfg.input_size): fix them in {CONFIG_NAME}; pass in_chans= to "
                "adapt the stem to other inputs"
            )
        if model.in_chans != declared_chans and "in_chans" not in explicit:
            raise WeightsError(
                f"{config}: the stem would be adapted from {declared_chans} to {model.in_chans} input channels; "
                f"make in_chans agree in {CONFIG_NAME}, or pass in_chans={model.in_chans} explicitly"
            )
        expected[stem] = (expected[stem][0], declared_chans, *expected[stem][2:])  # timm adapts the stem
    missing = sorted(set(expected) - set(shapes))
    unexpected = sorted(set(shapes) - set(expected))
    wrong = [key for key in sorted(set(expected) & set(shapes)) if expected[key] != shapes[key]]
    if not (missing or unexpected or wrong):
        return
    parts = [f"{key} has shape {shapes[key]} in the weights but {expected[key]} in the model" for key in wrong[:_SHOWN]]
    if missing:
        parts.append(f"missing {', '.join(missing[:_SHOWN])}{' ...' if len(missing) > _SHOWN else ''}")
    if unexpected:
        parts.append(f"unexpected {', '.join(unexpected[:_SHOWN])}{' ...' if len(unexpected) > _SHOWN else ''}")
    message = f"{weights} does not fit the model built from {CONFIG_NAME}: {'; '.join(parts)}"
    if "fc.weight" in wrong:
        message += (
            f"; the classifier differs ({CONFIG_NAME} says num_classes={model.num_classes}, the weights have "
            f"{weight_classes} outputs, global_pool={model.global_pool.pool_type!r}): fix {CONFIG_NAME}, or pass "
            f"num_classes= (a value other than {model.num_classes}) to train a new classifier"
        )
    else:
        message += f"; the weights come from another genotype or model_args: fix {CONFIG_NAME} or publish again"
    raise WeightsError(message)


# -- create --------------------------------------------------------------------------------------


def _check_arguments(kwargs: Mapping[str, Any]) -> None:
    for key in _model_arg_names():
        if key in kwargs and kwargs[key] is not None and (problem := _arg_problem(key, kwargs[key])):
            raise ModelError(f"create_model: {problem}")
    overlay = kwargs.get("pretrained_cfg_overlay") or {}
    if any(key in overlay for key in (*_WEIGHT_SOURCES, "hf_hub_id", "hf_hub_filename", "source")):
        raise ModelError(
            f"pretrained_cfg_overlay cannot redirect the weights of a published model (they are its {WEIGHTS_NAME}); "
            "pass checkpoint_path= to load other weights"
        )


def create_from_hub(model_name: str, pretrained: bool = False, **kwargs: Any):
    """``timm.create_model(model_name, pretrained, **kwargs)`` for a Hub or folder source, with clear errors.

    Raises :class:`HubError` (repository not found, offline and not cached, unreachable Hub, bad
    config), :class:`WeightsError` (a corrupt ``model.safetensors``, tensors that do not fit the model,
    a classifier or stem that would be reset or adapted without an explicit ``num_classes=`` /
    ``in_chans=``) or :class:`GenotypeError` (the genotype in ``config.json``'s ``model_args``).
    """
    import timm

    source = HubSource.parse(model_name)
    _check_arguments(kwargs)
    explicit = {key for key, value in kwargs.items() if value is not None}
    with _reaching(source) as unreachable:
        _read_config(source, kwargs.get("cache_dir"), unreachable)
        try:
            if pretrained:
                shapes = _tensor_shapes(_fetch(source, WEIGHTS_NAME, kwargs.get("cache_dir"), unreachable), source)
                _check_weights(source, shapes, _meta_model(source, kwargs), explicit)
            return timm.create_model(source.spec, pretrained=pretrained, **kwargs)
        except BnnzooError:
            raise
        except Exception as exc:
            error = hub_error(exc, source, unreachable=unreachable) or _load_error(exc, source)
            if error is None:
                raise
            raise error from None


def _load_error(exc: BaseException, source: HubSource) -> WeightsError | None:
    """A file that changed between the check and timm's load: still a bnnzoo error, never a raw one."""
    from safetensors import SafetensorError

    if isinstance(exc, SafetensorError):
        fix = _REPUBLISH if source.kind == "local-dir" else _REDOWNLOAD
        return WeightsError(
            f"{source.file(WEIGHTS_NAME)}: not a valid safetensors file (truncated or corrupt): {exc}; {fix}"
        )
    return None


def load_pretrained(source: str | os.PathLike, **kwargs: Any):
    """A published model with its weights: ``hf-hub:ORG/NAME``, ``local-dir:PATH`` or a folder path.

    Keyword arguments go to timm (``num_classes=`` resets the classifier, ``in_chans=`` adapts the stem).
    """
    return create_from_hub(HubSource.parse(source).spec, pretrained=True, **kwargs)
