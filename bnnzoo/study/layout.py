"""A study's folder: what it is, one folder per point, and which points are done.

::

    DIR/study.json                 kind ("noise" or "shortcut") and settings; every run of the study checks them
    DIR/points/NAME/               one point's working files (its search, its training)
    DIR/points/NAME/result.json    written last, atomically: the point is done
    DIR/report.md, DIR/*.png       the merged report (``bnnzoo study report DIR``)

A point is done exactly when its ``result.json`` exists, so a study that was interrupted, or whose
points ran as separate jobs, resumes and merges point by point.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bnnzoo._atomic import atomic_write_text
from bnnzoo.errors import BnnzooError

FORMAT = "bnnzoo.study/1"
STUDY_FILE = "study.json"
POINTS = "points"
RESULT_FILE = "result.json"


class StudyError(BnnzooError):
    """A study cannot be configured, run or merged."""


@dataclass(frozen=True)
class Point:
    """One independent run of a study: ``index`` in the study's order, a folder ``name``, its parameters."""

    index: int
    name: str
    params: dict[str, Any] = field(default_factory=dict)


def point_folder(root: str | os.PathLike, point: Point) -> Path:
    return Path(root) / POINTS / point.name


def is_main_process() -> bool:
    """False in the non-zero ranks of a torchrun job: only rank 0 writes a study's files."""
    return os.environ.get("RANK", "0") == "0"


def claim_study(root: str | os.PathLike, kind: str, settings: dict[str, Any], command: str | None = None) -> None:
    """Write ``study.json``, or check that the one there describes the same study."""
    path = Path(root) / STUDY_FILE
    if path.exists():
        saved = read_study(root)
        if saved["kind"] != kind:
            raise StudyError(f"{root} holds a {saved['kind']} study, not a {kind} study; choose another output folder")
        differ = sorted(
            key for key in {*saved["settings"], *settings} if saved["settings"].get(key) != settings.get(key)
        )
        if differ:
            raise StudyError(
                f"{root} holds a {kind} study with other settings ({', '.join(differ)}); "
                "rerun it with its own settings to resume it, or choose another output folder with -o"
            )
        return
    if is_main_process():
        record = {"format": FORMAT, "kind": kind, "settings": settings, "command": command}
        atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def read_study(root: str | os.PathLike) -> dict[str, Any]:
    """The ``study.json`` of ``root``: format, kind, settings and the command that started it."""
    path = Path(root) / STUDY_FILE
    if not path.is_file():
        raise StudyError(f"no study in {root}: {STUDY_FILE} is missing (start one with `bnnzoo study noise|shortcut`)")
    try:
        record = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StudyError(f"cannot read {path}: {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT or not isinstance(record.get("settings"), dict):
        raise StudyError(f"{path} is not a bnnzoo study file (format {FORMAT})")
    return record


def normalized(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` as they read back from JSON (tuples become lists), so that saved and new compare."""
    return json.loads(json.dumps(settings))


def is_done(root: str | os.PathLike, point: Point) -> bool:
    return (point_folder(root, point) / RESULT_FILE).is_file()


def write_result(folder: Path, result: dict[str, Any]) -> None:
    if is_main_process():
        atomic_write_text(folder / RESULT_FILE, json.dumps(result, indent=1) + "\n")


def read_results(root: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every finished point's result under ``root``, by point name (folders without a result are skipped)."""
    results = {}
    for path in sorted((Path(root) / POINTS).glob(f"*/{RESULT_FILE}")):
        try:
            results[path.parent.name] = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise StudyError(f"cannot read {path}: {error}; delete it to run that point again") from None
    return results
