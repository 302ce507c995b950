"""Locate the data that ships with bnnzoo: the grammar and the zoo's genotype files.

In an installed wheel they live inside the package (``bnnzoo/grammar``, ``bnnzoo/genotypes``);
in a source checkout they are the top-level ``grammar/`` and ``genotypes/`` folders.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> Path:
    """Return the folder ``grammar`` or ``genotypes``, installed or from the source tree."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"bnnzoo is installed without its {name}/ folder; reinstall the package")


def grammar_path() -> Path:
    return resource_dir("grammar") / "genotype.lark"


def genotype_dir() -> Path:
    return resource_dir("genotypes")
