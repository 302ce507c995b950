"""Atomic file writes: write a temporary file beside the target, then rename it into place.

A temporary file is ``.<target name>.<random>.tmp`` in the target's folder. It is flushed to disk
before the rename, and the folder after it, so that a crash (or a power cut) leaves either the old
file or the new one, never a mix. A process killed before the rename leaves its temporary file
behind; :func:`remove_temporaries` removes those of named targets (run it on start or resume).
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

_SUFFIX = ".tmp"


@contextlib.contextmanager
def temporary_file(folder: str | os.PathLike, name: str) -> Iterator[Path]:
    """Yield a new empty temporary file in ``folder`` for a file called ``name``.

    It is removed when the block ends, unless :func:`commit` moved it into place.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=_SUFFIX, dir=folder)
    os.close(fd)
    try:
        yield Path(tmp)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def commit(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Flush ``tmp`` to disk, give it ``target``'s mode and rename it over ``target`` in one step."""
    target = Path(target)
    with open(tmp, "rb+") as handle:
        os.fsync(handle.fileno())
    os.chmod(tmp, _mode_for(target))  # after writing: some writers recreate the file
    os.replace(tmp, target)
    sync_folder(target.parent)


def sync_folder(folder: str | os.PathLike) -> None:
    """Flush a folder's entries (renames, removals) to disk."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` in one step."""
    target = Path(path)
    with temporary_file(target.parent, target.name) as tmp:
        yield tmp
        commit(tmp, target)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def remove_temporaries(folder: str | os.PathLike, names: Iterable[str]) -> list[Path]:
    """Remove the temporary files that interrupted writes of ``folder/NAME`` left; return them."""
    folder = Path(folder)
    removed = []
    for name in names:
        for path in folder.glob(f".{glob.escape(name)}.*{_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    return removed


def _mode_for(target: Path) -> int:
    """Keep an existing file's mode; give a new file the usual 0666 minus the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
