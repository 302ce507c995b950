"""The genotype DSL: parse, validate and print genotype text.

>>> g = parse(open("genotypes/xnor_resnet18.bnn").read())
>>> parse(to_text(g)) == g
True
"""

from __future__ import annotations

import os
from pathlib import Path

from bnnzoo._atomic import atomic_write_text
from bnnzoo.dsl.printer import layer_text, to_text
from bnnzoo.dsl.reader import read
from bnnzoo.dsl.types import (
    Basic,
    Cell,
    CellNetwork,
    Edge,
    Genotype,
    Head,
    LayerList,
    MBConv,
    Node,
    Skip,
    Stem,
)
from bnnzoo.dsl.validate import validate
from bnnzoo.errors import BnnzooError, GenotypeError, GenotypeErrors, capped

__all__ = [
    "Basic",
    "Cell",
    "CellNetwork",
    "Edge",
    "Genotype",
    "Head",
    "LayerList",
    "MBConv",
    "Node",
    "Skip",
    "Stem",
    "check",
    "check_genotype",
    "dump",
    "layer_text",
    "load_genotype",
    "parse",
    "to_text",
]


def check(text: str, path: str = "<string>") -> list[GenotypeError]:
    """Return every problem in a genotype text (capped, see errors.capped); empty means it is valid."""
    genotype, errors = read(text, path)
    if genotype is not None:
        errors = capped([*errors, *validate(genotype, text)])
    return errors


def parse(text: str, path: str = "<string>") -> Genotype:
    """Parse and validate genotype text; raise :class:`GenotypeError` listing every problem."""
    genotype, errors = read(text, path)
    if genotype is not None:
        errors = capped([*errors, *validate(genotype, text)])
    if errors:
        raise errors[0] if len(errors) == 1 else GenotypeErrors(errors)
    assert genotype is not None
    return genotype


def check_genotype(genotype: Genotype) -> Genotype:
    """Validate a genotype built in code; return it, or raise :class:`GenotypeError`."""
    errors = validate(genotype)
    if errors:
        raise errors[0] if len(errors) == 1 else GenotypeErrors(errors)
    return genotype


def load_genotype(path: str | os.PathLike) -> Genotype:
    """Read and validate a ``.bnn`` file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BnnzooError(f"{path}: no such genotype file") from None
    except UnicodeDecodeError as exc:
        raise GenotypeError(f"not a UTF-8 text file ({exc.reason} at byte {exc.start})", path=str(path)) from None
    except OSError as exc:
        raise BnnzooError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(text, str(path))


def dump(genotype: Genotype, path: str | os.PathLike) -> None:
    """Write the canonical text of ``genotype`` to ``path`` atomically."""
    atomic_write_text(Path(path), to_text(genotype))
