"""Bounds of the reader on hostile text: capped error lists, windowed excerpts, UTF-8 only.

Golden tests of issue 12: a 50 kB ``reductions`` line with 10,000 out-of-range indices used to grow
``parse()`` by 2.3 GB and build a 489 MB message (each error copied the whole line); and
``meta k = "\\ud800"`` passed ``check`` and then ended ``fmt`` in a UnicodeEncodeError traceback.
Memory is measured with tracemalloc, not taken on trust.
"""

from __future__ import annotations

import dataclasses
import tracemalloc
from pathlib import Path

import pytest
from test_dsl_errors import CELLS, MBCONV, PATH, edit

from bnnzoo.cli import main
from bnnzoo.dsl import check, check_genotype, parse
from bnnzoo.errors import (
    EXCERPT_WIDTH,
    MAX_REPORTED_ERRORS,
    GenotypeErrors,
    GenotypeSyntaxError,
    GenotypeValidationError,
    MoreErrors,
)

OUT_OF_RANGE = 10_000
LONG_REDUCTIONS = edit(CELLS, "reductions 2 5", "reductions " + " ".join(str(1000 + i) for i in range(OUT_OF_RANGE)))


def _peak_bytes(function, *args):
    tracemalloc.start()
    try:
        result = function(*args)
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_long_reductions_line_is_a_small_file() -> None:
    assert 50_000 <= len(LONG_REDUCTIONS.encode()) <= 60_000


def test_errors_are_capped_with_a_final_count() -> None:
    errors, peak = _peak_bytes(check, LONG_REDUCTIONS, PATH)
    # 10,000 indices out of range, and too many reductions for a 32x32 input: 10,001 problems
    assert len(errors) == MAX_REPORTED_ERRORS + 1
    assert [e.message for e in errors[:2]] == [
        "reduction at cell 1000 is outside the network's cells 0..7",
        "reduction at cell 1001 is outside the network's cells 0..7",
    ]
    more = errors[-1]
    assert isinstance(more, MoreErrors) and more.count == OUT_OF_RANGE + 1 - MAX_REPORTED_ERRORS
    assert str(more) == f"{PATH}: and {OUT_OF_RANGE + 1 - MAX_REPORTED_ERRORS} more errors"
    assert peak < 32 * 2**20, f"check() peaked at {peak / 2**20:.0f} MiB on a 50 kB file"


def test_parse_of_the_long_line_builds_a_short_message() -> None:
    def message() -> str:
        with pytest.raises(GenotypeErrors) as info:
            parse(LONG_REDUCTIONS, PATH)
        return str(info.value)

    shown, peak = _peak_bytes(message)
    assert peak < 32 * 2**20, f"parse() peaked at {peak / 2**20:.0f} MiB on a 50 kB file"
    lines = shown.split("\n")
    assert len(lines) == 3 * MAX_REPORTED_ERRORS + 1  # message, excerpt, caret per error; then the count
    assert lines[-1] == f"{PATH}: and 9981 more errors"
    assert max(map(len, lines)) <= EXCERPT_WIDTH + 16


def test_reader_errors_are_capped_too() -> None:
    """Unknown settings are reader errors: they are counted past the cap, never kept."""
    text = edit(MBCONV, "head avgpool fc", "head avgpool fc\n" + "haed x\n" * 5000)
    errors, peak = _peak_bytes(check, text, PATH)
    assert len(errors) == MAX_REPORTED_ERRORS + 1
    assert all(e.message == "unknown setting 'haed'; did you mean 'head'?" for e in errors[:-1])
    assert [e.line for e in errors[:3]] == [8, 9, 10]
    assert str(errors[-1]) == f"{PATH}: and {5000 - MAX_REPORTED_ERRORS} more errors"
    assert peak < 32 * 2**20


def test_twenty_errors_are_shown_without_a_count() -> None:
    indices = " ".join(str(100 + i) for i in range(MAX_REPORTED_ERRORS - 1))  # + "too many reductions"
    errors = check(edit(CELLS, "reductions 2 5", f"reductions {indices}"), PATH)
    assert len(errors) == MAX_REPORTED_ERRORS
    assert not any(isinstance(e, MoreErrors) for e in errors)


def test_excerpt_is_a_window_around_the_column() -> None:
    """An error at column 5,016 of a 5,019-character line shows the line's last 80 characters."""
    text = edit(MBCONV, "head avgpool fc", 'meta pad = "' + "x" * 5000 + '"  haed')
    (error,) = check(text, PATH)
    assert (error.line, error.column) == (7, 5016)
    assert error.excerpt == "    ... " + "x" * 73 + '"  haed\n' + " " * (8 + 76) + "^"


def test_excerpt_of_a_long_line_cut_on_both_sides() -> None:
    text = edit(MBCONV, "head avgpool fc", 'meta pad = "' + "y" * 3000 + '"  haed' + " z" * 1000)
    (error,) = check(text, PATH)
    assert (error.line, error.column) == (7, 3016)
    window = "y" * 37 + '"  haed' + " z" * 18
    assert error.excerpt == f"    ... {window} ...\n" + " " * (8 + 40) + "^"


def test_short_lines_are_shown_whole() -> None:
    (error,) = check(edit(MBCONV, "space mbconv", "space mbconf"), PATH)
    assert error.excerpt == "    space mbconf\n          ^"


# -- UTF-8 only ------------------------------------------------------------------------------------

SURROGATE = edit(MBCONV, "head avgpool fc", 'head avgpool fc\nmeta k = "\\ud800"')


def test_a_lone_surrogate_escape_is_a_located_error() -> None:
    (error,) = check(SURROGATE, PATH)
    assert isinstance(error, GenotypeValidationError)
    assert (error.line, error.column) == (8, 10)
    assert error.message.startswith("the string holds U+D800, a lone surrogate that UTF-8 cannot encode")
    with pytest.raises(GenotypeValidationError, match="lone surrogate"):
        parse(SURROGATE, PATH)


def test_a_surrogate_pair_escape_is_a_character() -> None:
    genotype = parse(edit(MBCONV, "head avgpool fc", 'head avgpool fc\nmeta k = "\\ud83d\\ude00"'))
    assert dict(genotype.meta) == {"k": "\U0001f600"}


def test_a_raw_surrogate_in_the_text_is_located() -> None:
    """Text given in code (not read from a UTF-8 file) may hold a surrogate in a comment."""
    (error,) = check(edit(MBCONV, "head avgpool fc", "head avgpool fc\n# note \ud800"), PATH)
    assert isinstance(error, GenotypeSyntaxError)
    assert (error.line, error.column) == (8, 8)
    assert str(error) == f"{PATH}:8:8: character U+D800 is a lone surrogate, which UTF-8 cannot encode; remove it"


@pytest.mark.parametrize("command", ["check", "fmt"])
def test_cli_reports_the_surrogate_without_a_traceback(command: str, tmp_path: Path, capsys) -> None:
    path = tmp_path / "k.bnn"
    path.write_text(SURROGATE, encoding="utf-8")
    assert main([command, str(path)]) == 1
    out, err = capsys.readouterr()
    assert f"{path}:8:10: the string holds U+D800" in err
    assert "Traceback" not in out + err
    assert path.read_text(encoding="utf-8") == SURROGATE


@pytest.mark.parametrize("field", ["comments", "meta"])
def test_check_genotype_refuses_a_surrogate_built_in_code(field: str) -> None:
    """A genotype built in code is held to the same rule: dump() could not write it."""
    genotype = parse(MBCONV)
    value = ("\ud800",) if field == "comments" else (("k", "a\udfffb"),)
    with pytest.raises(GenotypeValidationError, match="lone surrogate, which UTF-8 cannot encode"):
        check_genotype(dataclasses.replace(genotype, **{field: value}))
