"""Zoo weights that ship inside the package: packed files, their manifest and their checks.

Each trained tag (``mbconv_a.fashion_mnist``) ships as one ``bnnzoo.packed/1`` file in this folder
(``docs/packed_format.md``), listed in ``manifest.json`` with its sha256, its preprocessing (input
size, mean, std, class names) and the accuracies measured by ``scripts/train_zoo.py``. The zoo's
pretrained config of a shipped tag names the file in timm's ``file`` key, so
``bnnzoo.create_model(name, pretrained=True)`` and ``timm.create_model(name, pretrained=True)``
load it offline through timm's ``load_pretrained``: the zoo entry point first checks the file's
sha256 (:func:`verify`), then :func:`packed_state_filter` (timm's ``pretrained_filter_fn``) turns
the packed tensors into the model's state dict and makes the packed convolutions
:class:`~bnnzoo.export.packed.PackedBinaryConv2d`, so the outputs equal the trained model's
bit for bit (as :func:`bnnzoo.export.packed.load_packed` guarantees).

Reading the manifest needs only ``json``: registering the zoo with timm stays light.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from bnnzoo.errors import WeightsError

__all__ = [
    "MANIFEST_FORMAT",
    "golden",
    "manifest",
    "packed_state_filter",
    "shipped_cfgs",
    "shipped_path",
    "verify",
    "weights_dir",
]

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = "bnnzoo.weights/1"
# The manifest fields that become timm pretrained-config keys of the tag.
CFG_KEYS = ("input_size", "mean", "std", "num_classes", "label_names", "hf_hub_id", "license", "notes")


def weights_dir() -> Path:
    """The folder of the shipped files (inside the installed package)."""
    return Path(str(resources.files(__package__)))


@cache
def manifest() -> dict[str, dict[str, Any]]:
    """The shipped tags: ``"model.tag" -> entry`` (``file``, ``sha256``, ``bytes``, config, accuracies)."""
    data = json.loads((weights_dir() / MANIFEST_NAME).read_text(encoding="utf-8"))
    if data.get("format") != MANIFEST_FORMAT:
        raise WeightsError(f"{weights_dir() / MANIFEST_NAME}: not a {MANIFEST_FORMAT} manifest")
    return data["tags"]


def shipped_path(tag: str) -> Path:
    """The packed file of shipped tag ``model.tag``."""
    return weights_dir() / manifest()[tag]["file"]


def shipped_cfgs(model: str) -> dict[str, dict[str, Any]]:
    """``tag -> pretrained-config keys`` of model ``model``'s shipped tags (``file`` points at the weights)."""
    cfgs = {}
    for full_tag, entry in manifest().items():
        name, tag = full_tag.split(".", 1)
        if name == model:
            cfg = {key: _tuples(entry[key]) for key in CFG_KEYS if entry.get(key) is not None}
            cfgs[tag] = {**cfg, "file": str(shipped_path(full_tag))}
    return cfgs


def _tuples(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(file: str | Path) -> None:
    """Check a shipped file against the sha256 in the manifest; a file we did not ship is not checked.

    Raises :class:`~bnnzoo.errors.WeightsError` when the file is missing or its sha256 differs.
    """
    path = Path(file)
    entries = {entry["file"]: entry for entry in manifest().values()}
    if path.parent.resolve() != weights_dir().resolve() or path.name not in entries:
        return
    expected = entries[path.name]["sha256"]
    if not path.is_file():
        raise WeightsError(f"{path}: the shipped weights file is missing; reinstall bnnzoo")
    found = _sha256(path)
    if found != expected:
        raise WeightsError(
            f"{path}: sha256 mismatch (expected {expected}, found {found}): the shipped weights file is "
            "corrupt or was changed; reinstall bnnzoo"
        )


def golden(tag: str) -> dict[str, Any]:
    """The golden logits stored beside a shipped tag's file (``images``, ``labels``, ``logits``)."""
    return json.loads((weights_dir() / manifest()[tag]["golden"]).read_text(encoding="utf-8"))


def packed_state_filter(state_dict: dict[str, Any], model: Any) -> dict[str, Any]:
    """timm ``pretrained_filter_fn``: a packed file's tensors -> the model's state dict.

    A state dict without packed tensors (a Hub ``model.safetensors``) passes through unchanged.
    For a packed one, the file named by the model's pretrained config is decoded by
    :func:`~bnnzoo.export.packed.load_packed` (which checks the genotype and every tensor); the
    packed convolutions of ``model`` become ``PackedBinaryConv2d`` with the file's flags.
    """
    from bnnzoo.export.packed import BITS_SUFFIX, PackedBinaryConv2d, load_packed, read_packed_metadata

    if not any(key.endswith(BITS_SUFFIX) for key in state_dict):
        return state_dict
    file = (getattr(model, "pretrained_cfg", None) or {}).get("file")
    if not file:
        raise WeightsError("packed weights need the file in the pretrained config ('file')")
    metadata = read_packed_metadata(file)
    from bnnzoo.dsl import to_text

    if metadata["genotype"].strip() != to_text(model.genotype).strip():
        raise WeightsError(f"{file}: the packed weights are for another genotype than {model.genotype.name!r}")
    decoded = load_packed(file)
    modules = dict(model.named_modules())
    for name, source in decoded.named_modules():
        if isinstance(source, PackedBinaryConv2d) and name in modules:
            target = modules[name]
            target.__class__ = PackedBinaryConv2d
            target.binary_weights = source.binary_weights
            target.binary_activations = source.binary_activations
    return decoded.state_dict()
