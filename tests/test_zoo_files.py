"""Every genotype file of the zoo is valid, canonical and documented by its leading comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from bnnzoo.dsl import check, parse, to_text
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names

ZOO = Path(__file__).resolve().parents[1] / "genotypes"
FILES = sorted(ZOO.glob("*.bnn"))


def test_the_zoo_has_files() -> None:
    assert FILES, f"no genotype files in {ZOO}"


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_zoo_file_is_valid(path: Path) -> None:
    errors = check(path.read_text(encoding="utf-8"), str(path))
    assert errors == [], "\n".join(str(error) for error in errors)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_zoo_file_is_canonical(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert to_text(parse(text, str(path))) == text, f"run 'bnnzoo fmt {path}'"


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_zoo_file_starts_with_a_comment_block(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# "), "a zoo file starts with comments saying what it is and where it comes from"
    genotype = parse(text, str(path))
    assert genotype.comments
    assert any(comment.strip() for comment in genotype.comments)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_zoo_file_is_named_after_its_genotype(path: Path) -> None:
    assert parse(path.read_text(encoding="utf-8")).name == path.stem


def test_library_lists_the_zoo_files() -> None:
    assert zoo_genotype_names() == [path.stem for path in FILES]
    for path in FILES:
        assert zoo_genotype(path.stem) == parse(path.read_text(encoding="utf-8"))
