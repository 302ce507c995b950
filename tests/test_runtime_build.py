"""The runtime's build: pip compiles the extension with the system compiler; without a compiler bnnzoo
still installs, and bnnzoo.runtime says clearly that it is unavailable."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest
from test_packaging import OFFLINE, _copy_tree, _run, built  # noqa: F401  (built: the wheel fixture)

pytestmark = pytest.mark.slow

PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import bnnzoo.runtime as rt
from bnnzoo.errors import BnnzooError
report = {"file": rt.__file__, "available": rt.available()}
try:
    rt.load("missing.packed.safetensors")
except BnnzooError as error:
    report["error"] = f"{type(error).__name__}: {error}"
print(json.dumps(report))
"""


def _probe(site) -> dict:
    env = {key: value for key, value in OFFLINE.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(site)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_wheel_carries_the_compiled_engine(built):  # noqa: F811  (the fixture)
    with zipfile.ZipFile(built["wheel"]) as wheel:
        names = wheel.namelist()
    assert any(name.startswith("bnnzoo/runtime/_engine") and name.endswith((".so", ".pyd")) for name in names)
    assert not any(name.endswith((".cpp", ".inc")) for name in names)  # sources go in the sdist only
    report = _probe(built["site"])
    assert report["available"] and str(built["site"]) in report["file"]
    assert report["error"].startswith("WeightsError:")  # the engine is there: the missing file is the problem


def test_without_a_compiler_bnnzoo_installs_and_says_the_runtime_is_unavailable(tmp_path):
    source = _copy_tree(tmp_path / "source")
    missing = str(tmp_path / "no-such-compiler")
    linker = f"{missing} -shared"
    env = {**OFFLINE, "CC": missing, "CXX": missing, "LDSHARED": linker, "LDCXXSHARED": linker}
    dist = tmp_path / "dist"
    command = [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "-w", str(dist)]
    result = subprocess.run(command, cwd=source, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (wheel,) = dist.glob("bnnzoo-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        assert not any("_engine" in name for name in archive.namelist())
    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(site), str(wheel)], tmp_path)
    report = _probe(site)
    assert report["available"] is False
    assert report["error"].startswith("RuntimeUnavailableError: bnnzoo.runtime is unavailable")
    assert "was not built when bnnzoo was installed" in report["error"]
    assert "Install a compiler" in report["error"]
