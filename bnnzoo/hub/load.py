"""Loading published models: ``hf-hub:ORG/NAME`` and ``local-dir:PATH``, with clear errors.

:func:`create_from_hub` is what ``bnnzoo.create_model`` runs for a Hub or folder source. It reads
``config.json`` first (so a missing repository, an offline cache miss or a broken genotype is reported
before anything is built), then lets timm build and load the model exactly as
``timm.create_model(source, pretrained=...)`` does, and turns timm's and huggingface_hub's exceptions
into :class:`~bnnzoo.errors.HubError`, :class:`~bnnzoo.errors.WeightsError` or
:class:`~bnnzoo.errors.GenotypeError`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bnnzoo.errors import BnnzooError, HubError, WeightsError

__all__ = ["HubSource", "create_from_hub", "hub_error", "load_pretrained", "read_config"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
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
                    if repo.count("/") != 1 or not all(repo.split("/")):
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


def hub_error(exc: BaseException, source: HubSource | str, what: str = "") -> BnnzooError | None:
    """A :class:`HubError` explaining a huggingface_hub exception, or None if ``exc`` is not one."""
    kinds = _hub_exceptions()
    where = source.spec if isinstance(source, HubSource) else str(source)
    repo = source.location if isinstance(source, HubSource) else where
    about = f"{where}{f' ({what})' if what else ''}"
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__

    def isa(*names: str) -> bool:
        return any(name in kinds and isinstance(exc, kinds[name]) for name in names)

    if isa("OfflineModeIsEnabled", "LocalEntryNotFoundError"):
        if _offline():
            return HubError(
                f"{about}: not in the local Hugging Face cache, and HF_HUB_OFFLINE=1 forbids downloading it. "
                f"Go online (unset HF_HUB_OFFLINE) or download it beforehand while online, e.g. "
                f"`hf download {repo}` or huggingface_hub.snapshot_download('{repo}')"
            )
        return HubError(
            f"{about}: cannot reach the Hub at {_endpoint()} and the file is not in the local cache "
            f"({detail}); check the network connection and HF_ENDPOINT"
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
    module = type(exc).__module__.split(".")[0]
    if module in ("httpx", "httpx2", "requests", "urllib3", "huggingface_hub") or isinstance(exc, ConnectionError):
        return HubError(f"{about}: cannot talk to the Hub at {_endpoint()}: {type(exc).__name__}: {detail}")
    return None


# -- config.json ---------------------------------------------------------------------------------


def _fetch(source: HubSource, filename: str, cache_dir: str | os.PathLike | None = None) -> Path:
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
        error = hub_error(exc, source, filename)
        if error is None:
            raise
        raise error from None


def read_config(source: HubSource | str, cache_dir: str | os.PathLike | None = None) -> dict[str, Any]:
    """Fetch and check ``config.json``; a ``bnnzoo_genotype`` config's genotype is validated here.

    A genotype that fails validation raises :class:`GenotypeError` located in
    ``<source>/config.json (model_args.genotype):LINE:COL``.
    """
    from bnnzoo import dsl
    from bnnzoo.zoo.models import GENERIC_ARCHITECTURE

    source = source if isinstance(source, HubSource) else HubSource.parse(source)
    path = _fetch(source, CONFIG_NAME, cache_dir)
    name = source.file(CONFIG_NAME)
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HubError(f"{name}: not valid JSON: {exc}") from None
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise HubError(f"{name}: no 'architecture'; not a timm model config")
    args = config.get("model_args", {})
    if not isinstance(args, dict):
        raise HubError(f"{name}: 'model_args' must be an object")
    pretrained_cfg = config.get("pretrained_cfg", {})
    if isinstance(pretrained_cfg, dict):
        from timm.models import PretrainedCfg

        known = {field.name for field in dataclasses.fields(PretrainedCfg)}
        unknown = sorted(set(pretrained_cfg) - known)
        if unknown:
            raise HubError(f"{name}: unknown keys in pretrained_cfg: {', '.join(unknown)}")
    if config["architecture"] == GENERIC_ARCHITECTURE:
        genotype = args.get("genotype")
        if not isinstance(genotype, str):
            raise HubError(f"{name}: architecture {GENERIC_ARCHITECTURE} needs model_args.genotype (genotype text)")
        dsl.parse(genotype, f"{name} (model_args.genotype)")
    return config


# -- create --------------------------------------------------------------------------------------

_SIZE_MISMATCH = re.compile(
    r"size mismatch for (?P<key>\S+): copying a param with shape torch\.Size\(\[(?P<src>[^\]]*)\]\) from "
    r"checkpoint, the shape in current model is torch\.Size\(\[(?P<dst>[^\]]*)\]\)"
)
_KEYS = re.compile(r'(Missing|Unexpected) key\(s\) in state_dict: ((?:"[^"]*"(?:, )?)+)')


_REPUBLISH = "stage the folder again"
_REDOWNLOAD = (
    "the published file is broken, or the cached copy is: download it again with force_download=True or clear the cache"
)


def _weights_error(exc: BaseException, source: HubSource, config: dict[str, Any]) -> WeightsError | None:
    """A WeightsError for timm's load failures: a corrupt file or tensors that do not fit."""
    weights = source.file(WEIGHTS_NAME)
    text = str(exc)
    try:
        from safetensors import SafetensorError
    except ImportError:  # pragma: no cover
        SafetensorError = ()  # type: ignore[assignment]  # noqa: N806
    if isinstance(exc, SafetensorError) or "safetensors" in type(exc).__module__:
        return WeightsError(
            f"{weights}: not a valid safetensors file (truncated or corrupt): {text}; "
            + (_REPUBLISH if source.kind == "local-dir" else _REDOWNLOAD)
        )
    match = _SIZE_MISMATCH.search(text)
    if match:
        key = match["key"]
        src = tuple(int(n) for n in match["src"].split(",") if n.strip())
        dst = tuple(int(n) for n in match["dst"].split(",") if n.strip())
        message = (
            f"{weights} does not fit the model built from {CONFIG_NAME}: {key} has shape {src} in the weights "
            f"but {dst} in the model"
        )
        if key.startswith("fc."):
            message += (
                f"; the classifier differs ({CONFIG_NAME} says num_classes={config.get('num_classes')}, the weights "
                f"have {src[0]} outputs): pass num_classes= (a value other than {config.get('num_classes')}) to "
                f"reset the classifier, or fix num_classes in {CONFIG_NAME}"
            )
        elif key == "stem.conv.weight":
            message += f"; the input channels differ: fix input_size/in_chans in {CONFIG_NAME}"
        return WeightsError(message)
    if "Error(s) in loading state_dict" in text:
        found = _KEYS.findall(text)
        detail = "; ".join(which.lower() + " " + keys.replace('"', "")[:200] for which, keys in found) or text[:300]
        return WeightsError(f"{weights} does not fit the model built from {CONFIG_NAME}: {detail}")
    if isinstance(exc, RuntimeError) and "No suitable checkpoints found" in text:
        return WeightsError(f"{source.spec}: no weights file ({WEIGHTS_NAME}) in the folder")
    return None


def create_from_hub(model_name: str, pretrained: bool = False, **kwargs: Any):
    """``timm.create_model(model_name, pretrained, **kwargs)`` for a Hub or folder source, with clear errors.

    Raises :class:`HubError` (repository not found, offline and not cached, unreachable Hub, bad
    config), :class:`WeightsError` (truncated ``model.safetensors``, tensors that do not fit the model)
    or :class:`GenotypeError` (the genotype in ``config.json``'s ``model_args`` is invalid).
    """
    import timm

    source = HubSource.parse(model_name)
    config = read_config(source, kwargs.get("cache_dir"))
    try:
        return timm.create_model(source.spec, pretrained=pretrained, **kwargs)
    except BnnzooError:
        raise
    except Exception as exc:
        error = hub_error(exc, source) or _weights_error(exc, source, config)
        if error is None:
            raise
        raise error from None


def load_pretrained(source: str | os.PathLike, **kwargs: Any):
    """A published model with its weights: ``hf-hub:ORG/NAME``, ``local-dir:PATH`` or a folder path.

    Keyword arguments go to timm (``num_classes=`` resets the classifier, ``in_chans=`` adapts the stem).
    """
    return create_from_hub(HubSource.parse(source).spec, pretrained=True, **kwargs)
