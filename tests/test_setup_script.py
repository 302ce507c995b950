"""``scripts/setup``, the README's set-up step: apt-get directly as root and through sudo for anyone
else, then a ``.venv`` in the checkout with bnnzoo installed in it. Run from a copy in a scratch
folder against stand-ins for id, sudo, apt-get and python3 that record their arguments (the real
thing runs on a clean clone: see the README's timings)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup"
STAND_INS = {
    "id": 'echo "$FAKE_UID"',
    "sudo": 'echo "sudo $*" >> "$LOG"; "$@"',
    "apt-get": 'echo "apt-get $* DEBIAN_FRONTEND=${DEBIAN_FRONTEND:-}" >> "$LOG"',
    # `python3 -m venv .venv` makes a stand-in venv whose python records its arguments too
    "python3": (
        'echo "python3 $*" >> "$LOG"; case "$*" in "-m venv .venv") mkdir -p .venv/bin; cp "$0" .venv/bin/python;; esac'
    ),
    "env": 'echo "env $1" >> "$LOG"; export "$1"; shift; "$@"',
}


def _run(tmp_path: Path, uid: int, *args: str, sudo: bool = True) -> tuple[subprocess.CompletedProcess, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in STAND_INS.items():
        if name == "sudo" and not sudo:
            continue
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "log"
    log.write_text("")
    for tool in ("dirname", "mkdir", "cp"):  # the real tools the script and the stand-ins need
        if not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True, exist_ok=True)
    shutil.copy(SETUP, checkout / "scripts" / "setup")
    env = {"PATH": str(bin_dir), "FAKE_UID": str(uid), "LOG": str(log), "HOME": str(tmp_path)}
    result = subprocess.run(
        ["/bin/sh", str(checkout / "scripts" / "setup"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    return result, log.read_text().splitlines()


APT = [
    "env DEBIAN_FRONTEND=noninteractive",
    "apt-get update -q DEBIAN_FRONTEND=noninteractive",
    "env DEBIAN_FRONTEND=noninteractive",
    "apt-get install -y -q graphviz dataset-fashion-mnist python3-venv DEBIAN_FRONTEND=noninteractive",
]
VENV = ["python3 -m venv .venv"]


def test_as_root_apt_get_runs_without_sudo(tmp_path: Path) -> None:
    result, log = _run(tmp_path, 0, sudo=False)
    assert result.returncode == 0, result.stderr
    assert not any(line.startswith("sudo") for line in log)
    assert log == [*APT, *VENV, "python3 -m pip install -q -e ."]  # .venv/bin/python, the stand-in's copy
    assert "activate it with: . .venv/bin/activate" in result.stdout


def test_a_user_runs_apt_get_through_sudo(tmp_path: Path) -> None:
    result, log = _run(tmp_path, 1000, "test")
    assert result.returncode == 0, result.stderr
    assert log[0].startswith("sudo env DEBIAN_FRONTEND=noninteractive apt-get update")
    assert log[3].startswith("sudo env DEBIAN_FRONTEND=noninteractive apt-get install")
    assert log[-2:] == [*VENV, "python3 -m pip install -q -e .[test]"]  # as the user, into .venv


def test_an_existing_venv_is_reused(tmp_path: Path) -> None:
    _run(tmp_path, 0)
    result, log = _run(tmp_path, 0, "test")
    assert result.returncode == 0, result.stderr
    assert log == [*APT, "python3 -m pip install -q -e .[test]"]


def test_a_user_without_sudo_is_told_what_to_do(tmp_path: Path) -> None:
    result, log = _run(tmp_path, 1000, sudo=False)
    assert result.returncode == 1
    assert "apt-get needs root: run this as root, or install sudo" in result.stderr
    assert log == []


@pytest.mark.parametrize("argument", ["tests", "--help"])
def test_only_test_is_an_argument(tmp_path: Path, argument: str) -> None:
    result, log = _run(tmp_path, 0, argument)
    assert result.returncode == 2 and "usage: scripts/setup [test]" in result.stderr
    assert log == []


def test_the_script_is_executable() -> None:
    assert os.access(SETUP, os.X_OK)
