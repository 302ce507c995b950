"""The built wheel and sdist carry the grammar and the zoo, and an installed wheel parses the zoo
on its own, away from the source tree.

The build runs on a copy of the working tree (build artefacts and caches left out), so that it
neither writes ``build/`` and ``*.egg-info`` into the checkout nor races another run. Everything
runs offline: no build isolation, no index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
GENOTYPES = sorted(path.name for path in (ROOT / "genotypes").glob("*.bnn"))
NAMES = [Path(name).stem for name in GENOTYPES]
OFFLINE = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
TOP_LEVEL_SKIP = {".git", "build", "dist", ".venv", "runs", ".pytest_cache", ".hypothesis", ".ruff_cache"}


def _run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=OFFLINE, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _copy_tree(destination: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        skip = {n for n in names if n == "__pycache__" or n.endswith((".egg-info", ".pyc"))}
        if Path(folder) != ROOT / "bnnzoo" / "weights":  # the zoo weights that ship in the wheel stay
            skip |= {n for n in names if n.endswith(".safetensors")}
        if Path(folder) == ROOT:
            skip |= TOP_LEVEL_SKIP & set(names)
        return skip

    shutil.copytree(ROOT, destination, ignore=ignore)
    return destination


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """Build a wheel and an sdist once for this module; install the wheel into a bare folder."""
    tmp = tmp_path_factory.mktemp("packaging")
    source = _copy_tree(tmp / "source")
    dist = tmp / "dist"
    _run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(dist)], source)
    # --skip-dependency-check: pyproject's build requires list "wheel", which setuptools >= 70.1 no
    # longer needs and which an offline environment may not have.
    _run(
        [sys.executable, "-m", "build", "--sdist", "--no-isolation", "--skip-dependency-check", "--outdir", str(dist)],
        source,
    )
    (wheel,) = dist.glob("bnnzoo-*.whl")
    (sdist,) = dist.glob("bnnzoo-*.tar.gz")
    site = tmp / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)], tmp)
    return {"tmp": tmp, "wheel": wheel, "sdist": sdist, "site": site}


def test_the_zoo_has_files() -> None:
    assert GENOTYPES


def test_wheel_contains_grammar_and_genotypes(built) -> None:
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = set(wheel.namelist())
    assert "bnnzoo/grammar/genotype.lark" in names
    missing = [f"bnnzoo/genotypes/{name}" for name in GENOTYPES if f"bnnzoo/genotypes/{name}" not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert "bnnzoo/dsl/reader.py" in names
    assert not any(name.startswith(("tests/", "grammar/", "genotypes/")) for name in names)


def test_wheel_carries_the_shipped_weights_within_the_bound(built) -> None:
    manifest = json.loads((ROOT / "bnnzoo" / "weights" / "manifest.json").read_text())["tags"]
    with zipfile.ZipFile(built["wheel"]) as wheel:
        sizes = {info.filename: info.file_size for info in wheel.infolist()}
    assert "bnnzoo/weights/manifest.json" in sizes and "bnnzoo/weights/__init__.py" in sizes
    for entry in manifest.values():
        assert sizes.get(f"bnnzoo/weights/{entry['file']}") == entry["bytes"], entry["file"]
        assert f"bnnzoo/weights/{entry['golden']}" in sizes
    assert built["wheel"].stat().st_size <= 40e6, built["wheel"].stat().st_size


SHIPPED_PROBE = """
import json, sys
from pathlib import Path

site = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(site))
import torch
import bnnzoo, timm
from bnnzoo import weights

logits = {}
for tag in sorted(weights.manifest()):
    model = timm.create_model(tag, pretrained=True).eval()
    with torch.no_grad():
        logits[tag] = model(torch.zeros(1, *model.pretrained_cfg["input_size"])).tolist()
print(json.dumps({"file": {tag: bnnzoo.create_model(tag, pretrained=True).pretrained_cfg["file"] for tag in logits},
                  "logits": logits}))
"""


def test_installed_wheel_loads_the_shipped_weights_offline(built) -> None:
    site, tmp = built["site"], built["tmp"]
    env = {key: value for key, value in OFFLINE.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")
    result = subprocess.run(
        [sys.executable, "-I", "-c", SHIPPED_PROBE, str(site)],
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    manifest = json.loads((ROOT / "bnnzoo" / "weights" / "manifest.json").read_text())["tags"]
    assert sorted(report["file"]) == sorted(manifest)
    for tag, file in report["file"].items():
        assert _inside(file, site), file
        assert len(report["logits"][tag][0]) == manifest[tag]["num_classes"]


def test_sdist_contains_grammar_and_genotypes(built) -> None:
    with tarfile.open(built["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert "grammar/genotype.lark" in names
    assert "pyproject.toml" in names and "MANIFEST.in" in names
    missing = [f"genotypes/{name}" for name in GENOTYPES if f"genotypes/{name}" not in names]
    assert not missing, f"the sdist lacks {missing}"


PROBE = """
import json, sys
from pathlib import Path

site = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(site))
import bnnzoo
from bnnzoo import _resources
from bnnzoo.dsl import to_text
from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names

names = zoo_genotype_names()
parsed = {name: zoo_genotype(name).name for name in names}
print(json.dumps({
    "bnnzoo": bnnzoo.__file__,
    "dsl": sys.modules["bnnzoo.dsl"].__file__,
    "grammar": str(_resources.grammar_path()),
    "genotypes": str(_resources.genotype_dir()),
    "sys_path": sys.path,
    "names": names,
    "parsed": parsed,
    "canonical": {name: len(to_text(zoo_genotype(name))) for name in names},
}))
"""


def _inside(path: str, folder: Path, cwd: Path | None = None) -> bool:
    """Whether ``path`` (relative ones taken from ``cwd``) lies in ``folder``."""
    return ((cwd or Path.cwd()) / path).resolve().is_relative_to(folder.resolve())


def test_installed_wheel_parses_the_zoo_outside_the_source_tree(built) -> None:
    site, tmp = built["site"], built["tmp"]
    assert (site / "bnnzoo" / "__init__.py").is_file()
    # -I: no PYTHONPATH, no user site, no current directory on sys.path. The system site-packages
    # (with the editable install's finder, appended to sys.meta_path) stays for torch and lark;
    # the wheel's folder goes first on sys.path, and the probe reports where everything came from.
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site)],
        cwd=tmp,
        env={key: value for key, value in OFFLINE.items() if key != "PYTHONPATH"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert _inside(report["bnnzoo"], site), report["bnnzoo"]
    assert _inside(report["dsl"], site), report["dsl"]
    assert _inside(report["grammar"], site), report["grammar"]
    assert _inside(report["genotypes"], site), report["genotypes"]
    # The interpreter's own folders (a virtualenv may live in the checkout, e.g. .venv/) are not the source tree.
    interpreter = [Path(sys.prefix), Path(sys.base_prefix)]
    from_source = [
        entry
        for entry in report["sys_path"]
        if _inside(entry, ROOT, cwd=tmp) and not any(_inside(entry, prefix, cwd=tmp) for prefix in interpreter)
    ]
    assert not from_source, report["sys_path"]
    assert report["names"] == NAMES
    assert report["parsed"] == {name: name for name in NAMES}


def test_no_package_source_is_git_ignored() -> None:
    """A release is built from a git checkout: package sources must not be ignored by .gitignore."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    result = _run(
        ["git", "ls-files", "--others", "--ignored", "--exclude-standard", "--", "bnnzoo", "grammar", "genotypes"],
        ROOT,
    )
    ignored = [
        line for line in result.stdout.splitlines() if line.endswith((".py", ".lark", ".bnn", ".json", ".typed"))
    ]
    assert not ignored, f".gitignore hides package sources: {ignored[:10]}"


def test_pyproject_lists_every_package() -> None:
    """``[tool.setuptools] packages`` is explicit (for the grammar/genotypes mapping): keep it complete."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(init.parent.relative_to(root).parts) for init in (root / "bnnzoo").rglob("__init__.py")}
    assert found <= listed, f"add to pyproject.toml packages: {sorted(found - listed)}"
    assert {"bnnzoo.grammar", "bnnzoo.genotypes"} <= listed
