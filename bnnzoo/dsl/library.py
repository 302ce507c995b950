"""The zoo's genotype files, by name, and resolving "a zoo name or a path" to a genotype."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from bnnzoo import _resources
from bnnzoo._suggest import did_you_mean
from bnnzoo.dsl.types import Genotype
from bnnzoo.errors import BnnzooError

SUFFIX = ".bnn"


def zoo_genotype_names() -> list[str]:
    """Names of the genotype files shipped with bnnzoo, sorted."""
    return sorted(path.stem for path in _resources.genotype_dir().glob(f"*{SUFFIX}"))


def zoo_genotype_path(name: str) -> Path:
    """The shipped file of zoo genotype ``name``."""
    path = _resources.genotype_dir() / f"{name}{SUFFIX}"
    if not path.is_file():
        raise BnnzooError(f"unknown zoo model '{name}'{did_you_mean(name, zoo_genotype_names())}")
    return path


@functools.cache
def zoo_genotype(name: str) -> Genotype:
    """Load (once) and return zoo genotype ``name``."""
    from bnnzoo.dsl import load_genotype

    return load_genotype(zoo_genotype_path(name))


def is_genotype_path(text: str | os.PathLike) -> bool:
    """Whether ``text`` names a genotype file rather than a zoo name: the one place this is decided.

    A path ends in ``.bnn``, has a directory separator or is an existing file; anything else is a
    zoo name, with an optional tag (``mbconv_a.fashion_mnist``)."""
    text = os.fspath(text)
    return bool(text) and (text.endswith(SUFFIX) or os.sep in text or Path(text).is_file())


def resolve_genotype(name_or_path: str | os.PathLike | Genotype) -> Genotype:
    """Accept a Genotype, a path to a ``.bnn`` file, or a zoo name."""
    if isinstance(name_or_path, Genotype):
        return name_or_path
    from bnnzoo.dsl import load_genotype

    text = os.fspath(name_or_path)
    if is_genotype_path(text):
        return load_genotype(text)
    return zoo_genotype(text.split(".", 1)[0])  # "mbconv_a.fashion_mnist" names a tag of mbconv_a
