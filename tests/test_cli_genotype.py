"""``bnnzoo check`` and ``bnnzoo fmt``, in-process through ``bnnzoo.cli.main`` and once as the
installed console script."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bnnzoo.cli import main
from bnnzoo.dsl import parse, to_text

ZOO = Path(__file__).resolve().parents[1] / "genotypes"
FILES = sorted(ZOO.glob("*.bnn"))

# Two errors: an unknown space (line 3, column 7) and an unknown stem (line 6, column 6).
TWO_ERRORS = """\
bnnzoo 1
name broken
space mbconf
input 3x32x32
classes 10
stem conv3x4 32
head avgpool fc

layers {
  MB3(2) 32
}
"""
ERROR_1 = "3:7: unknown space 'mbconf'; did you mean 'mbconv'?"
ERROR_2 = "6:6: unknown stem 'conv3x4'; did you mean 'conv3x3'?"


def _non_canonical(text: str) -> str:
    """The same genotype, spaced and commented differently."""
    lines = []
    for line in text.splitlines():
        if line.startswith(("name", "classes", "stem")):
            line = line.replace(" ", "    ") + "   # an inline comment"
        lines.append(line)
        if line.startswith("bnnzoo"):
            lines.append("")
    return "\n".join(lines) + "\n\n\n"


@pytest.fixture
def good_copy(tmp_path: Path) -> Path:
    source = ZOO / "bnas_a_baseline.bnn" if (ZOO / "bnas_a_baseline.bnn").exists() else FILES[0]
    path = tmp_path / "model.bnn"
    path.write_text(_non_canonical(source.read_text(encoding="utf-8")), encoding="utf-8")
    return path


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    path = tmp_path / "broken.bnn"
    path.write_text(TWO_ERRORS, encoding="utf-8")
    return path


def test_check_good_files(capsys) -> None:
    assert main(["check", *map(str, FILES)]) == 0
    out, err = capsys.readouterr()
    for path in FILES:
        assert f"{path}: ok" in out
    assert err == ""


def test_check_reports_both_errors(broken: Path, capsys) -> None:
    assert main(["check", str(broken)]) == 1
    out, err = capsys.readouterr()
    assert f"{broken}:{ERROR_1}" in err
    assert f"{broken}:{ERROR_2}" in err
    assert "    space mbconf\n          ^" in err  # the excerpt and caret
    assert "Traceback" not in out + err
    assert "ok" not in out


def test_check_mixed_files_reports_each(broken: Path, capsys) -> None:
    assert main(["check", str(FILES[0]), str(broken)]) == 1
    out, err = capsys.readouterr()
    assert f"{FILES[0]}: ok" in out
    assert f"{broken}:{ERROR_1}" in err and f"{broken}:{ERROR_2}" in err
    assert "1 of 2 file(s) have errors" in err


def test_check_missing_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.bnn"
    assert main(["check", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert f"{missing}: no such file" in err
    assert "Traceback" not in out + err


def test_check_non_utf8_file(tmp_path: Path, capsys) -> None:
    path = tmp_path / "latin1.bnn"
    path.write_bytes(TWO_ERRORS.replace("broken", "caf\xe9").encode("latin-1"))
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert str(path) in err and "UTF-8" in err
    assert "Traceback" not in out + err


def test_fmt_check_leaves_a_non_canonical_file_alone(good_copy: Path, capsys) -> None:
    before = good_copy.read_bytes()
    assert main(["fmt", "--check", str(good_copy)]) == 1
    out, err = capsys.readouterr()
    assert str(good_copy) in out + err
    assert "canonical" in out + err
    assert good_copy.read_bytes() == before


def test_fmt_rewrites_to_canonical_form(good_copy: Path, capsys) -> None:
    before = good_copy.read_text(encoding="utf-8")
    canonical = to_text(parse(before))
    assert canonical != before
    assert main(["fmt", str(good_copy)]) == 0
    assert good_copy.read_text(encoding="utf-8") == canonical
    assert [p.name for p in good_copy.parent.iterdir()] == [good_copy.name]  # no temporary file left
    capsys.readouterr()
    assert main(["fmt", "--check", str(good_copy)]) == 0
    assert main(["fmt", str(good_copy)]) == 0  # formatting a canonical file changes nothing
    assert good_copy.read_text(encoding="utf-8") == canonical


def test_fmt_check_accepts_the_zoo(capsys) -> None:
    assert main(["fmt", "--check", *map(str, FILES)]) == 0


def test_fmt_refuses_an_invalid_file(broken: Path, capsys) -> None:
    before = broken.read_bytes()
    assert main(["fmt", str(broken)]) == 1
    out, err = capsys.readouterr()
    assert f"{broken}:{ERROR_1}" in err
    assert "Traceback" not in out + err
    assert broken.read_bytes() == before
    assert main(["fmt", "--check", str(broken)]) == 1
    assert broken.read_bytes() == before


def test_fmt_missing_file(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "missing.bnn"
    assert main(["fmt", str(missing)]) == 1
    out, err = capsys.readouterr()
    assert str(missing) in err and "no such file" in err
    assert "Traceback" not in out + err
    assert not missing.exists()


def _console_script() -> str:
    beside = Path(sys.executable).with_name("bnnzoo")
    found = str(beside) if beside.exists() else shutil.which("bnnzoo")
    if found is None:
        pytest.fail("the 'bnnzoo' console script is not installed (pip install -e .)")
    return found


def test_console_script(broken: Path, tmp_path: Path) -> None:
    """One run of the real entry point (importing torch makes each run take seconds)."""
    result = subprocess.run(
        [_console_script(), "check", *map(str, FILES), "broken.bnn"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert result.returncode == 1
    assert all(f"{path}: ok" in result.stdout for path in FILES)
    assert f"broken.bnn:{ERROR_1}" in result.stderr
    assert f"broken.bnn:{ERROR_2}" in result.stderr
    assert f"1 of {len(FILES) + 1} file(s) have errors" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
