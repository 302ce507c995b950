"""The layer order of docs/architecture.md, as the import-linter contracts in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import importlinter  # noqa: F401  (the test extra installs it; a missing linter fails, not skips)

ROOT = Path(__file__).resolve().parents[1]
LINT = [
    sys.executable,
    "-c",
    "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())",
]


def lint(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LINT, "--no-cache", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_the_package_keeps_every_layer_contract() -> None:
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_an_import_back_up_the_chain_breaks_the_contract(tmp_path: Path) -> None:
    # A copy of the contract over a two-layer package with one import from dsl up to zoo.
    package = tmp_path / "bnnzoo"
    for name in ("zoo", "dsl"):
        (package / name).mkdir(parents=True)
        (package / name / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "dsl" / "types.py").write_text("def f():\n    from bnnzoo.zoo import models\n")
    (package / "zoo" / "models.py").write_text("")
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """\
            [importlinter]
            root_package = bnnzoo
            [importlinter:contract:layers]
            name = layers
            type = layers
            containers = bnnzoo
            layers =
                zoo
                dsl
            """
        )
    )
    result = subprocess.run(
        [*LINT, "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "bnnzoo.dsl.types -> bnnzoo.zoo.models" in result.stdout
