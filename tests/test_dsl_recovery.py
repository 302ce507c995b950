"""One run of ``check`` reports a file's syntax, header and body errors together, wherever the text
can be read: a syntax error sets its line (or its block) aside instead of ending the reading, and
header errors do not keep the body from being validated."""

from __future__ import annotations

import pytest

from bnnzoo.cli import main
from bnnzoo.dsl import check, parse
from bnnzoo.dsl.reader import MAX_SYNTAX_ERRORS
from bnnzoo.errors import GenotypeErrors, GenotypeSyntaxError, GenotypeValidationError

PATH = "three.bnn"

# One error of each kind: a syntax error (line 7), a header error (line 3) and a body error (line 11).
THREE_ROUNDS = """\
bnnzoo 1
name three
space mbconf
input 3x32x32
classes 10
stem conv3x3 32
head avgpool (fc)
shortcut partial_duplicate

layers {
  MB9(2) 32
  MB5(6) 64 s2
}
"""
SYNTAX = ("unexpected '('; expected a number or a shape like 3x32x32 or a word or end of line", 7, 14)
HEADER = ("unknown space 'mbconf'; did you mean 'mbconv'?", 3, 7)
BODY = ("kernel 9 is outside the mbconv space (kernels 3, 5, 7)", 11, 3)


def _found(text: str) -> list[tuple[str, int | None, int | None]]:
    return [(error.message, error.line, error.column) for error in check(text, PATH)]


def test_syntax_and_header_errors_in_one_run() -> None:
    # An unknown space leaves nothing to validate the body against: the syntax and header errors.
    assert _found(THREE_ROUNDS) == [SYNTAX, HEADER]


def test_syntax_header_and_body_errors_in_one_run() -> None:
    text = THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("stem conv3x3", "stem conv3x4")
    header = ("unknown stem 'conv3x4'; did you mean 'conv3x3'?", 6, 6)
    assert _found(text) == [SYNTAX, header, BODY]
    errors = check(text, PATH)
    assert [type(error) for error in errors] == [GenotypeSyntaxError, GenotypeValidationError, GenotypeValidationError]
    assert str(errors[0]).endswith("    head avgpool (fc)\n                 ^")  # the original line
    with pytest.raises(GenotypeErrors) as raised:
        parse(text, PATH)
    assert [(e.message, e.line, e.column) for e in raised.value.errors] == [SYNTAX, header, BODY]


def test_a_line_set_aside_is_not_reported_missing_again() -> None:
    text = THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("classes 10", "classes = 10")
    found = _found(text)
    assert found[0] == (
        "unexpected '='; expected a number or a shape like 3x32x32 or a word or end of line",
        5,
        9,
    )
    assert SYNTAX in found and BODY in found
    assert not any("missing" in message for message, _, _ in found)


def test_several_syntax_errors_in_one_run() -> None:
    text = THREE_ROUNDS.replace("classes 10", "classes = 10").replace("input 3x32x32", "input 3x32x32 $")
    found = _found(text)
    assert [line for _, line, _ in found[:3]] == [4, 5, 7]
    assert found[0][0].startswith("unexpected character '$'")


def test_a_block_with_a_syntax_error_is_set_aside_whole() -> None:
    text = THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("MB5(6) 64 s2", "MB5(6 64 s2")
    found = _found(text)
    # The bad layer line and the header errors, but no error about the rest of the block it sits in.
    assert [line for _, line, _ in found] == [7, 12]
    assert found[1][0].startswith("unexpected")


def test_a_block_opened_without_a_brace_does_not_cascade() -> None:
    text = THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("layers {", "layers")
    found = _found(text)
    assert len([line for _, line, _ in found if line and line >= 10]) == 1


def test_a_file_without_a_version_line_reports_one_error() -> None:
    text = THREE_ROUNDS.replace("bnnzoo 1\n", "")
    assert _found(text) == [("unexpected 'name'; a genotype file starts with 'bnnzoo 1'", 1, 1)]


def test_syntax_errors_are_capped() -> None:
    body = "".join(f"  MB3(2) {16 + i} s1 ?\n" for i in range(3 * MAX_SYNTAX_ERRORS))
    text = THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("classes 10", "classes = 10")
    text += "".join(f"meta k{i} = oops\n" for i in range(3 * MAX_SYNTAX_ERRORS)) + body
    errors = check(text, PATH)
    assert len(errors) == MAX_SYNTAX_ERRORS
    assert all(isinstance(error, GenotypeSyntaxError) for error in errors)


def test_check_command_reports_all_three_kinds(tmp_path, capsys) -> None:
    path = tmp_path / "three.bnn"
    path.write_text(THREE_ROUNDS.replace("space mbconf", "space mbconv").replace("name three", "name 3three"))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:7:14: unexpected '('" in err
    assert f"{path}:2:6: 'name' expects one word" in err
    assert f"{path}:11:3: kernel 9 is outside the mbconv space" in err
    assert "1 of 1 file(s) have errors" in err
