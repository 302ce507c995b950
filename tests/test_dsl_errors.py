"""Golden tests of every genotype error: exact message, line and column, and the printed form.

Each case edits one of three small valid genotypes (an mbconv layer list, a resnet layer list and a
bnas cell network) and lists every error ``check`` must report for it, in order.
"""

from __future__ import annotations

import contextlib
import dataclasses
import signal
from dataclasses import dataclass

import pytest

from bnnzoo.dsl import check, check_genotype, load_genotype, parse
from bnnzoo.errors import (
    BnnzooError,
    GenotypeError,
    GenotypeErrors,
    GenotypeSyntaxError,
    GenotypeValidationError,
)

PATH = "model.bnn"

MBCONV = """\
bnnzoo 1
name m
space mbconv
input 3x32x32
classes 10
stem conv3x3 32
head avgpool fc

layers {
  MB3(2) 32
  MB5(6) 64 s2 x2
}
"""

RESNET = """\
# A small resnet.
bnnzoo 1
name r
space resnet
input 3x32x32
classes 10
stem conv3x3 64
head avgpool fc

layers {
  basic(real) 64 x2
  basic(binary) 128 s2
}
"""

CELLS = """\
bnnzoo 1
name c
space bnas
input 3x32x32
classes 10
stem conv3x3 48
head avgpool fc
layers 8
channels 16
reductions 2 5

cell normal {
  node 2 = bin_conv_3x3(0) + max_pool_3x3(1)
  node 3 = none(2) + bin_conv_5x5(0)
  concat 2 3
}

cell reduction {
  node 2 = max_pool_3x3(0) + avg_pool_3x3(1)
  node 3 = bin_dil_conv_3x3(2)
  concat 2 3
}
"""


def edit(text: str, old: str, new: str) -> str:
    """Replace the one occurrence of ``old`` in ``text``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


@dataclass(frozen=True)
class Case:
    id: str
    text: str
    errors: tuple[tuple[str, int | None, int | None], ...]  # (message, line, column)
    kind: type[GenotypeError] = GenotypeValidationError


SYNTAX = GenotypeSyntaxError
EXPECT = "expected a number or a shape like 3x32x32 or a word or end of line"
MISSING_NODE = "(inputs are 0 and 1, nodes 2..3)"

CASES = [
    # -- syntax ------------------------------------------------------------------------------
    Case(
        "unexpected-token", edit(MBCONV, "classes 10", "classes = 10"), ((f"unexpected '='; {EXPECT}", 5, 9),), SYNTAX
    ),
    Case(
        "unexpected-character",
        edit(MBCONV, "classes 10", "classes 10$"),
        ((f"unexpected character '$'; {EXPECT}", 5, 11),),
        SYNTAX,
    ),
    Case(
        "unexpected-end-of-line",
        edit(CELLS, "node 3 = none(2) + bin_conv_5x5(0)", "node 3 = none(2) +"),
        (("unexpected end of line; expected a word", 14, 21),),
        SYNTAX,
    ),
    Case(
        "unexpected-end-of-file",
        edit(MBCONV, "x2\n}\n", "x2\n"),
        (("unexpected end of file; expected '}' or a word", 11, 18),),
        SYNTAX,
    ),
    Case(
        "no-version-line",
        edit(MBCONV, "bnnzoo 1\n", ""),
        (("unexpected 'name'; a genotype file starts with 'bnnzoo 1'", 1, 1),),
        SYNTAX,
    ),
    Case(
        "no-version-line-after-comments",
        edit(RESNET, "bnnzoo 1\n", ""),
        (("unexpected 'name'; a genotype file starts with 'bnnzoo 1'", 2, 1),),
        SYNTAX,
    ),
    Case("empty-file", "", (("unexpected end of file; expected 'bnnzoo'", 1, 1),), SYNTAX),
    Case("version-without-number", "bnnzoo\n", (("unexpected end of line; expected a number", 1, 7),), SYNTAX),
    Case(
        "unsupported-version",
        edit(MBCONV, "bnnzoo 1", "bnnzoo 2"),
        (("unsupported format version 2; this bnnzoo reads version 1", 1, 8),),
    ),
    Case(
        "invalid-escape",
        edit(MBCONV, "head avgpool fc\n", 'head avgpool fc\nmeta note = "a\\qb"\n'),
        (('invalid escape in string; use \\" \\\\ \\n \\t or \\uXXXX', 8, 13),),
    ),
    # -- unknown words, with suggestions -------------------------------------------------------
    Case(
        "unknown-setting",
        edit(MBCONV, "head avgpool fc", "haed avgpool fc"),
        (("unknown setting 'haed'; did you mean 'head'?", 7, 1),),
    ),
    Case(
        "unknown-required-setting",
        edit(MBCONV, "classes 10", "clases 10"),
        (
            ("unknown setting 'clases'; did you mean 'classes'?", 5, 1),
            ("missing setting 'classes', e.g. 'classes 10'", 1, 1),
        ),
    ),
    Case(
        "unknown-block",
        edit(MBCONV, "MB3(2) 32", "MBB3(2) 32"),
        (("unknown block 'MBB3'; did you mean 'MB3'?", 10, 3),),
    ),
    Case(
        "unknown-block-skip", edit(MBCONV, "MB3(2) 32", "skp"), (("unknown block 'skp'; did you mean 'skip'?", 10, 3),)
    ),
    Case(
        "unknown-op",
        edit(CELLS, "bin_conv_5x5(0)", "bin_conv_5x6(0)"),
        (("unknown op 'bin_conv_5x6'; did you mean 'bin_conv_5x5'?", 14, 22),),
    ),
    Case(
        "unknown-space",
        edit(MBCONV, "space mbconv", "space mbconf"),
        (("unknown space 'mbconf'; did you mean 'mbconv'?", 3, 7),),
    ),
    Case(
        "unknown-shortcut",
        edit(MBCONV, "head avgpool fc", "head avgpool fc\nshortcut zeros"),
        (("unknown shortcut 'zeros'; did you mean 'zero'?", 8, 10),),
    ),
    Case(
        "unknown-stem",
        edit(MBCONV, "stem conv3x3", "stem conv3x4"),
        (("unknown stem 'conv3x4'; did you mean 'conv3x3'?", 6, 6),),
    ),
    Case(
        "unknown-head",
        edit(MBCONV, "head avgpool fc", "head avgpol fc"),
        (("unknown head part 'avgpol'; did you mean 'avgpool'?", 7, 6),),
    ),
    Case(
        "unknown-cell-kind",
        edit(CELLS, "cell normal", "cell normall"),
        (
            ("unknown cell kind 'normall'; did you mean 'normal'?", 12, 6),
            ("missing 'cell normal { ... }'", 1, 1),
        ),
    ),
    # -- values outside the space or its bounds --------------------------------------------------
    Case(
        "kernel-outside-space",
        edit(MBCONV, "MB3(2) 32", "MB9(2) 32"),
        (("kernel 9 is outside the mbconv space (kernels 3, 5, 7)", 10, 3),),
    ),
    Case("stride-3", edit(MBCONV, "64 s2 x2", "64 s3 x2"), (("stride must be 1 or 2, got 3", 11, 13),)),
    Case("stride-0", edit(RESNET, "128 s2", "128 s0"), (("stride must be 1 or 2, got 0", 12, 21),)),
    Case(
        "stem-stride", edit(MBCONV, "stem conv3x3 32", "stem conv3x3 32 s4"), (("stride must be 1 or 2, got 4", 6, 17),)
    ),
    Case(
        "channels-0",
        edit(RESNET, "basic(binary) 128", "basic(binary) 0"),
        (("channels must be between 1 and 4096, got 0", 12, 17),),
    ),
    Case(
        "channels-too-many",
        edit(MBCONV, "MB5(6) 64 s2 x2", "MB5(6) 4097 s2"),
        (("channels must be between 1 and 4096, got 4097", 11, 10),),
    ),
    Case(
        "stem-channels-0",
        edit(RESNET, "stem conv3x3 64", "stem conv3x3 0"),
        (("stem channels must be between 1 and 4096, got 0", 7, 14),),
    ),
    Case(
        "cell-channels-0",
        edit(CELLS, "channels 16", "channels 0"),
        (("channels must be between 1 and 4096, got 0", 9, 1),),
    ),
    Case("expansion-0", edit(MBCONV, "MB3(2)", "MB3(0)"), (("expansion must be between 1 and 8, got 0", 10, 7),)),
    Case("expansion-9", edit(MBCONV, "MB5(6)", "MB5(10)"), (("expansion must be between 1 and 8, got 10", 11, 7),)),
    Case("repeat-0", edit(MBCONV, "s2 x2", "s2 x0"), (("repeat must be between 1 and 64, got 0", 11, 16),)),
    Case("repeat-65", edit(RESNET, "64 x2", "64 x65"), (("repeat must be between 1 and 64, got 65", 11, 18),)),
    Case(
        "classes-0", edit(MBCONV, "classes 10", "classes 0"), (("classes must be between 1 and 100000, got 0", 5, 1),)
    ),
    Case(
        "classes-absurd",
        edit(MBCONV, "classes 10", "classes 100001"),
        (("classes must be between 1 and 100000, got 100001", 5, 1),),
    ),
    Case(
        "input-size-0",
        edit(RESNET, "3x32x32\n", "3x0x32\n").replace(" s2", ""),
        (("input height must be between 1 and 1024, got 0", 5, 1),),
    ),
    Case(
        "input-size-absurd",
        edit(MBCONV, "3x32x32", "3x32x2048"),
        (("input width must be between 1 and 1024, got 2048", 4, 1),),
    ),
    Case(
        "input-channels-absurd",
        edit(MBCONV, "3x32x32", "65x32x32"),
        (("input channels must be between 1 and 64, got 65", 4, 1),),
    ),
    Case(
        "cell-layers-0",
        edit(edit(CELLS, "layers 8", "layers 0"), "reductions 2 5", "reductions"),
        (("layers must be between 1 and 100, got 0", 8, 8),),
    ),
    Case(
        "absurd-parameter-count",
        edit(MBCONV, "MB5(6) 64 s2 x2", "MB7(8) 4096\n  MB7(8) 4096"),
        (
            (
                "the network would have up to 26579 M parameters, over the limit of 200 M; "
                "reduce channels, expansions or depth",
                2,
                1,
            ),
        ),
    ),
    # -- cells ------------------------------------------------------------------------------------
    Case(
        "edge-points-at-itself",
        edit(CELLS, "node 3 = none(2)", "node 3 = none(3)"),
        (("node 3 has an edge that points at itself", 14, 17),),
    ),
    Case(
        "edge-from-later-node",
        edit(CELLS, "node 2 = bin_conv_3x3(0)", "node 2 = bin_conv_3x3(3)"),
        (("node 2 has an edge from node 3, which is computed later", 13, 25),),
    ),
    Case(
        "edge-from-missing-node",
        edit(CELLS, "bin_conv_5x5(0)", "bin_conv_5x5(7)"),
        ((f"node 3 has an edge from missing node 7 {MISSING_NODE}", 14, 35),),
    ),
    Case(
        "concat-missing-node",
        edit(CELLS, "  concat 2 3\n}\n\ncell reduction", "  concat 2 4\n}\n\ncell reduction"),
        (("'concat' names missing node 4 (nodes are 2..3)", 15, 10),),
    ),
    Case(
        "nodes-out-of-order",
        edit(CELLS, "node 3 = none(2)", "node 4 = none(2)"),
        (("nodes are numbered in order from 2: expected node 3, got 4", 14, 8),),
    ),
    Case(
        "reduction-outside-cells",
        edit(CELLS, "reductions 2 5", "reductions 2 8"),
        (("reduction at cell 8 is outside the network's cells 0..7", 10, 1),),
    ),
    # -- reductions against the input size ------------------------------------------------------
    Case(
        "too-many-reductions-layers",
        edit(edit(RESNET, "3x32x32", "3x4x4"), "basic(real) 64 x2", "basic(real) 64 s2\n  basic(real) 64 s2"),
        (("too many stride-2 reductions: input 4x4 allows at most 2", 13, 21),),
    ),
    Case(
        "too-many-reductions-stem",
        edit(edit(MBCONV, "3x32x32", "3x2x2"), "stem conv3x3 32", "stem conv3x3 32 s2"),
        (("too many stride-2 reductions: input 2x2 allows at most 1", 11, 13),),
    ),
    Case(
        "too-many-reductions-cells",
        edit(CELLS, "3x32x32", "3x2x2"),
        (("too many reductions: input 2x2 allows at most 1, got 2", 10, 1),),
    ),
    # -- settings and structure -------------------------------------------------------------------
    Case(
        "duplicate-setting",
        edit(MBCONV, "classes 10\n", "classes 10\nclasses 100\n"),
        (("'classes' is set twice (first on line 5)", 6, 1),),
    ),
    Case(
        "duplicate-meta",
        edit(MBCONV, "head avgpool fc\n", 'head avgpool fc\nmeta a = "x"\nmeta a = "y"\n'),
        (("meta 'a' is set twice", 9, 6),),
    ),
    Case(
        "duplicate-layer-count",
        edit(CELLS, "layers 8\n", "layers 8\nlayers 9\n"),
        (("'layers' is set twice (first on line 8)", 9, 8),),
    ),
    Case(
        "missing-setting",
        edit(MBCONV, "stem conv3x3 32\n", ""),
        (("missing setting 'stem', e.g. 'stem conv3x3 48'", 1, 1),),
    ),
    Case(
        "missing-settings",
        edit(RESNET, "name r\nspace resnet\n", ""),
        (
            ("missing setting 'name', e.g. 'name my_model'", 2, 1),
            ("missing setting 'space', one of: mbconv, resnet, bnas", 2, 1),
        ),
    ),
    Case(
        "missing-cell",
        CELLS[: CELLS.index("\ncell reduction")] + "\n",
        (("missing 'cell reduction { ... }'", 1, 1),),
    ),
    Case(
        "missing-layers-block",
        MBCONV[: MBCONV.index("\nlayers {")] + "\n",
        (("the mbconv space needs a 'layers { ... }' block", 1, 1),),
    ),
    Case(
        "layers-and-cells",
        edit(CELLS, "reductions 2 5\n", "reductions 2 5\n\nlayers {\n  MB3(2) 48\n}\n"),
        (("a genotype has either a 'layers { ... }' block or cells, not both", 12, 1),),
    ),
    Case(
        "cells-in-layer-list-space",
        MBCONV + CELLS[CELLS.index("\ncell normal") :].replace("\ncell reduction", "\n#\ncell reduction", 1),
        (("a genotype has either a 'layers { ... }' block or cells, not both", 9, 1),),
    ),
    Case(
        "basic-in-mbconv-space",
        edit(MBCONV, "MB3(2) 32", "basic(real) 32"),
        (("the mbconv space has MB k (e) blocks and skip, not 'basic'", 10, 3),),
    ),
    Case(
        "mbconv-in-resnet-space",
        edit(RESNET, "basic(real) 64 x2", "MB3(2) 64"),
        (("the resnet space has basic blocks, not 'MB3(2)'", 11, 3),),
    ),
    Case(
        "shortcut-outside-mbconv",
        edit(RESNET, "head avgpool fc", "head avgpool fc\nshortcut zero"),
        (("'shortcut' applies to the mbconv space only, not 'resnet'", 9, 1),),
    ),
    Case(
        "mb-without-expansion",
        edit(MBCONV, "MB3(2) 32", "MB3 32"),
        (("'MB3' needs an expansion ratio, e.g. MB3(6)", 10, 3),),
    ),
    Case(
        "basic-without-downsample",
        edit(RESNET, "basic(real) 64 x2", "basic(fake) 64 x2"),
        (("'basic' needs its downsample shortcut kind: basic(binary) or basic(real)", 11, 9),),
    ),
    Case(
        "skip-with-channels",
        edit(MBCONV, "MB3(2) 32", "skip 32"),
        (("'skip' is the identity: it takes no expansion, channels or stride", 10, 3),),
    ),
]


def _excerpt(text: str, line: int, column: int) -> str:
    lines = text.splitlines()
    if line > len(lines):  # an empty file has no line to show
        return ""
    return f"    {lines[line - 1]}\n    {' ' * (column - 1)}^"


def test_the_base_genotypes_are_valid() -> None:
    for text in (MBCONV, RESNET, CELLS):
        assert check(text, PATH) == []


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_error_golden(case: Case) -> None:
    errors = check(case.text, PATH)
    assert [(error.message, error.line, error.column) for error in errors] == list(case.errors)
    for error, (message, line, column) in zip(errors, case.errors):
        assert isinstance(error, case.kind)
        assert isinstance(error, GenotypeError)
        assert isinstance(error, BnnzooError)
        assert error.path == PATH
        shown = str(error)
        excerpt = _excerpt(case.text, line, column)
        assert shown == f"{PATH}:{line}:{column}: {message}" + (f"\n{excerpt}" if excerpt else "")
        assert error.excerpt == excerpt


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_parse_raises_every_error(case: Case) -> None:
    with pytest.raises(GenotypeError) as info:
        parse(case.text, PATH)
    error = info.value
    assert isinstance(error, BnnzooError)
    if len(case.errors) == 1:
        assert not isinstance(error, GenotypeErrors)
        assert isinstance(error, case.kind)
        errors = [error]
    else:
        assert isinstance(error, GenotypeErrors)
        errors = error.errors
    assert [(e.message, e.line, e.column) for e in errors] == list(case.errors)
    message, line, column = case.errors[0]
    assert (error.message, error.line, error.column) == (message, line, column)
    assert str(error).startswith(f"{PATH}:{line}:{column}: {message}")


# -- several problems at once ----------------------------------------------------------------------

MANY = """\
bnnzoo 1
name many
space mbconv
input 3x32x32
classes 0
stem conv3x4 32
head avgpool fc
shortcut zeros
meta a = "x"
meta a = "y"

layers {
  MB9(2) 32
  MB5(9) 64 s3 x0
  skp
}
"""
# The problems the reader finds (unknown words, duplicates) come first; the semantic problems of the
# same file (classes 0, MB9, MB5(9), s3, x0) follow in the same run.
MANY_ERRORS = [
    ("meta 'a' is set twice", 10, 6),
    ("unknown block 'skp'; did you mean 'skip'?", 15, 3),
    ("unknown stem 'conv3x4'; did you mean 'conv3x3'?", 6, 6),
    ("unknown shortcut 'zeros'; did you mean 'zero'?", 8, 10),
    ("classes must be between 1 and 100000, got 0", 5, 1),
    ("kernel 9 is outside the mbconv space (kernels 3, 5, 7)", 13, 3),
    ("repeat must be between 1 and 64, got 0", 14, 16),
    ("stride must be 1 or 2, got 3", 14, 13),
    ("expansion must be between 1 and 8, got 9", 14, 7),
]


def test_check_reports_every_error_of_a_file() -> None:
    errors = check(MANY, PATH)
    assert [(e.message, e.line, e.column) for e in errors] == MANY_ERRORS
    assert all(isinstance(e, GenotypeError) and isinstance(e, BnnzooError) for e in errors)
    with pytest.raises(GenotypeErrors) as info:
        parse(MANY, PATH)
    assert [(e.message, e.line, e.column) for e in info.value.errors] == MANY_ERRORS
    assert isinstance(info.value, GenotypeError) and isinstance(info.value, BnnzooError)
    shown = str(info.value)
    for message, line, column in MANY_ERRORS:
        assert f"{PATH}:{line}:{column}: {message}\n" in shown


SEMANTIC_MANY = edit(
    edit(edit(MBCONV, "classes 10", "classes 0"), "MB3(2) 32", "MB9(0) 32"),
    "MB5(6) 64 s2 x2",
    "MB5(6) 0 s3 x99",
)
SEMANTIC_MANY_ERRORS = [
    ("classes must be between 1 and 100000, got 0", 5, 1),
    ("kernel 9 is outside the mbconv space (kernels 3, 5, 7)", 10, 3),
    ("expansion must be between 1 and 8, got 0", 10, 7),
    ("repeat must be between 1 and 64, got 99", 11, 15),
    ("channels must be between 1 and 4096, got 0", 11, 10),
    ("stride must be 1 or 2, got 3", 11, 12),
    (
        "an MB block cannot reduce channels (32 -> 0): its parameter-free shortcut only fills channels up",
        11,
        10,
    ),
]


def test_check_reports_every_semantic_error() -> None:
    errors = check(SEMANTIC_MANY, PATH)
    assert [(e.message, e.line, e.column) for e in errors] == SEMANTIC_MANY_ERRORS
    with pytest.raises(GenotypeErrors) as info:
        parse(SEMANTIC_MANY, PATH)
    assert [(e.message, e.line, e.column) for e in info.value.errors] == SEMANTIC_MANY_ERRORS
    assert str(info.value) == "\n".join(str(e) for e in errors)


def test_check_genotype_raises_for_genotypes_built_in_code() -> None:
    good = parse(CELLS)
    assert check_genotype(good) is good
    bad = dataclasses.replace(good, num_classes=0)
    with pytest.raises(GenotypeValidationError, match="classes must be between 1 and 100000, got 0"):
        check_genotype(bad)
    worse = dataclasses.replace(bad, input_shape=(0, 32, 32))
    with pytest.raises(GenotypeErrors) as info:
        check_genotype(worse)
    assert [e.message for e in info.value.errors] == [
        "input channels must be between 1 and 64, got 0",
        "classes must be between 1 and 100000, got 0",
    ]


# -- files -------------------------------------------------------------------------------------------


def test_load_missing_file(tmp_path) -> None:
    path = tmp_path / "nowhere" / "missing.bnn"
    with pytest.raises(BnnzooError) as info:
        load_genotype(path)
    assert str(path) in str(info.value)
    assert "no such" in str(info.value)


def test_load_non_utf8_file(tmp_path) -> None:
    path = tmp_path / "latin1.bnn"
    path.write_bytes(MBCONV.replace("name m", "name caf\xe9").encode("latin-1"))
    with pytest.raises(BnnzooError) as info:
        load_genotype(path)
    assert str(path) in str(info.value)
    assert "UTF-8" in str(info.value)


def test_load_reports_the_path(tmp_path) -> None:
    path = tmp_path / "bad.bnn"
    path.write_text(edit(MBCONV, "space mbconv", "space mbconf"), encoding="utf-8")
    with pytest.raises(GenotypeError) as info:
        load_genotype(path)
    assert str(info.value).startswith(f"{path}:3:7: unknown space 'mbconf'")
    assert load_genotype(_write(tmp_path / "good.bnn", MBCONV)) == parse(MBCONV)


def _write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


# -- robustness against hostile input -----------------------------------------------------------------


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (instead of hanging the suite) when the body runs longer than ``seconds``."""

    def expire(signum, frame):
        raise TimeoutError(f"took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_huge_numbers_are_bound_errors() -> None:
    """An absurd number is an ordinary bound error, not an OverflowError from the estimate."""
    huge = "1" + "0" * 400
    text = edit(MBCONV, "classes 10", f"classes {huge}")
    errors = check(text, PATH)
    assert errors, "no error for an absurd class count"
    assert (errors[0].message, errors[0].line, errors[0].column) == (
        f"classes must be between 1 and 100000, got {huge}",
        5,
        1,
    )
    with pytest.raises(GenotypeError):
        parse(text, PATH)


@pytest.mark.parametrize(
    "old, new, line",
    [
        ("classes 10", "classes " + "9" * 5000, 5),
        ("3x32x32", "3x32x" + "9" * 5000, 4),
        ("64 s2 x2", "64 s" + "2" * 5000, 11),
        ("MB3(2)", "MB3(" + "2" * 5000 + ")", 10),
        ("bnnzoo 1", "bnnzoo " + "1" * 5000, 1),
    ],
    ids=["classes", "input", "stride", "expansion", "version"],
)
def test_numbers_with_thousands_of_digits_are_genotype_errors(old: str, new: str, line: int) -> None:
    """Python refuses int() of over 4300 digits with a ValueError: that must not escape."""
    text = edit(MBCONV, old, new)
    errors = check(text, PATH)
    assert errors and all(isinstance(error, GenotypeError) for error in errors)
    assert errors[0].line == line
    with pytest.raises(GenotypeError):
        parse(text, PATH)


def test_absurd_cell_count_is_refused_quickly() -> None:
    """``layers 99999999999999`` is a bound error; the parameter estimate must not loop over it."""
    text = edit(CELLS, "layers 8", "layers 99999999999999")
    with time_limit(10):
        errors = check(text, PATH)
    assert ("layers must be between 1 and 100, got 99999999999999", 8, 8) in [
        (e.message, e.line, e.column) for e in errors
    ]


def test_repeats_count_in_the_parameter_estimate() -> None:
    """Copies 2..64 of ``MB7(8) 4096 x64`` take 4096 channels in: far over the parameter bound."""
    errors = check(edit(MBCONV, "MB5(6) 64 s2 x2", "MB7(8) 4096 x64"), PATH)
    assert any(e.message.startswith("the network would have up to ") for e in errors), [e.message for e in errors]


def test_empty_layers_block_is_located() -> None:
    text = MBCONV[: MBCONV.index("  MB3")] + "}\n"
    errors = check(text, PATH)
    assert [e.message for e in errors] == ["the 'layers' block is empty"]
    assert errors[0].line in (9, 10), "the error should point at the empty block"
    assert str(errors[0]).startswith(f"{PATH}:{errors[0].line}:{errors[0].column}: ")


def test_too_many_layers_is_located() -> None:
    text = edit(MBCONV, "MB5(6) 64 s2 x2", "MB5(6) 64 s2 x64\n" + "  skip x64\n" * 3)
    errors = check(text, PATH)
    assert [e.message for e in errors] == ["the network has 257 layers, over the limit of 256"]
    assert errors[0].line is not None and 9 <= errors[0].line <= 15, "the error should point into the block"


def test_excerpt_shows_the_line_of_the_error_after_unicode_line_separators() -> None:
    """Lark counts lines at \\n only; the excerpt must show that same line even when a string
    holds U+2028 or U+0085, which str.splitlines() also breaks at."""
    text = edit(MBCONV, "head avgpool fc", 'meta note = "a\u2028b\x85c"\nhaed avgpool fc')
    (error,) = check(text, PATH)
    assert (error.message, error.line, error.column) == ("unknown setting 'haed'; did you mean 'head'?", 8, 1)
    assert error.excerpt == "    haed avgpool fc\n    ^"


@pytest.mark.parametrize("name", ["a b", "", "1abc", "a#b", "a\nb", "caf\u00e9"])
def test_check_genotype_refuses_names_that_cannot_be_written(name: str) -> None:
    """A name that is not one WORD of the grammar cannot survive to_text/parse."""
    genotype = dataclasses.replace(parse(MBCONV), name=name)
    with pytest.raises(GenotypeError):
        check_genotype(genotype)


@pytest.mark.parametrize("key", ["a b", "", "9", "a=b"])
def test_check_genotype_refuses_meta_keys_that_cannot_be_written(key: str) -> None:
    genotype = dataclasses.replace(parse(MBCONV), meta=((key, "value"),))
    with pytest.raises(GenotypeError):
        check_genotype(genotype)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (edit(edit(CELLS, "layers 8", "layers 1"), "reductions 2 5\n", ""), []),
        (
            edit(edit(CELLS, "3x32x32", "3x2x2"), "reductions 2 5\n", ""),
            ["model.bnn:8:8: too many reductions: input 2x2 allows at most 1, got 2"],
        ),
        (
            edit(edit(CELLS, "layers 8", "layers 0"), "reductions 2 5\n", ""),
            [
                "model.bnn:8:8: layers must be between 1 and 100, got 0",
                "model.bnn:8:8: reduction at cell 0 is outside the network's cells 0..-1",
            ],
        ),
    ],
    ids=["one-cell", "tiny-input", "no-cells"],
)
def test_errors_about_default_reductions_are_located(text: str, expected: list[str]) -> None:
    """Without a ``reductions`` line the cells at layers // 3 and 2 * layers // 3 reduce; a problem
    with those defaults still needs a place in the file (the ``layers`` line), like every error."""
    errors = check(text, PATH)
    assert [str(error).splitlines()[0] for error in errors] == expected
    assert all(error.line == 8 for error in errors)
