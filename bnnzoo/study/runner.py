"""Run a study's points, in this process or as separate processes, and merge what is done into a report.

Points are independent: each runs in its own folder and ends by writing its ``result.json``
(:mod:`bnnzoo.study.layout`). :func:`run_study` skips the points that are done, so an interrupted
study resumes point by point (a point's own search resumes from its checkpoint); ``jobs > 1``
runs the pending points in a :class:`~concurrent.futures.ProcessPoolExecutor` (spawned processes,
``threads`` torch threads each); ``only`` runs a chosen few, e.g. one per cluster job, and
:func:`write_report` merges whatever folders exist.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Protocol

from bnnzoo._atomic import atomic_write_text
from bnnzoo.errors import BnnzooError
from bnnzoo.study.layout import (
    Point,
    StudyError,
    claim_study,
    is_done,
    is_main_process,
    normalized,
    point_folder,
    read_results,
    read_study,
    write_result,
)

KINDS = {"noise": "bnnzoo.study.noise", "shortcut": "bnnzoo.study.shortcut"}
REPORT_FILE = "report.md"

Echo = Callable[[str], None]


class Study(Protocol):
    """What the runner needs of a study kind (see noise.py and shortcut.py)."""

    kind: str

    def settings(self) -> dict[str, Any]: ...

    def points(self) -> list[Point]: ...

    def run_point(self, point: Point, folder: Path, echo: Echo) -> dict[str, Any]: ...

    def report(self, results: dict[str, dict[str, Any]], root: Path, command: str | None) -> str: ...


def load_study(kind: str, settings: dict[str, Any]) -> Study:
    """The study of ``kind`` with ``settings`` (as study.json holds them)."""
    if kind not in KINDS:
        raise StudyError(f"unknown study kind {kind!r}; known: {', '.join(KINDS)}")
    return importlib.import_module(KINDS[kind]).from_settings(settings)


def select(points: Sequence[Point], only: Sequence[int | str] | None) -> list[Point]:
    """The points named by index or name in ``only`` (all when None), in the study's order."""
    if only is None:
        return list(points)
    by_name = {point.name: point for point in points}
    chosen = set()
    for key in only:
        if isinstance(key, int) or (isinstance(key, str) and key.isdigit()):
            index = int(key)
            if not 0 <= index < len(points):
                raise StudyError(f"point {index} does not exist: this study has points 0..{len(points) - 1}")
            chosen.add(index)
        elif key in by_name:
            chosen.add(by_name[key].index)
        else:
            raise StudyError(f"no point named {key!r}; `--list` shows the points")
    return [point for point in points if point.index in chosen]


def _prefixed(name: str) -> Echo:
    """Print lines prefixed with the point's name (in rank 0 only, under torchrun)."""
    if not is_main_process():
        return lambda line: None
    return lambda line: print(f"[{name}] {line}", flush=True)


def run_point(kind: str, settings: dict[str, Any], point: Point, root: str) -> str:
    """Run one point in this process and write its result; returns the point's name."""
    study = load_study(kind, settings)
    folder = point_folder(root, point)
    folder.mkdir(parents=True, exist_ok=True)
    echo = _prefixed(point.name)
    echo(f"point {point.index}: started")
    started = time.perf_counter()
    result = study.run_point(point, folder, echo)
    result.update(name=point.name, index=point.index, params=point.params, seconds=time.perf_counter() - started)
    write_result(folder, result)
    echo(f"point {point.index}: done in {result['seconds']:.0f} s")
    return point.name


def _init_worker(threads: int) -> None:
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(threads)


def run_study(
    study: Study,
    root: str | os.PathLike,
    *,
    jobs: int = 1,
    threads: int | None = None,
    only: Sequence[int | str] | None = None,
    report: bool = True,
    echo: Echo = print,
    command: str | None = None,
) -> list[str]:
    """Run the study's pending points (``only`` those, if given) and write the report; returns the names run."""
    if jobs < 1 or (threads is not None and threads < 1):
        raise StudyError(f"--jobs and --threads must be at least 1, got {jobs} and {threads}")
    if jobs > 1 and "RANK" in os.environ:
        raise StudyError("--jobs cannot be combined with torchrun: run one point per torchrun job (--point)")
    root = Path(root)
    settings = normalized(study.settings())
    claim_study(root, study.kind, settings, command)
    pending = []
    for point in select(study.points(), only):
        if is_done(root, point):
            echo(f"[{point.name}] point {point.index}: done already, skipped")
        else:
            pending.append(point)
    failures: dict[str, str] = {}
    if jobs == 1 or len(pending) <= 1:
        if threads is not None:
            _init_worker(threads)
        for point in pending:
            run_point(study.kind, settings, point, str(root))
    else:
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(threads or 1,))
        try:
            futures = {pool.submit(run_point, study.kind, settings, point, str(root)): point for point in pending}
            for future in as_completed(futures):
                try:
                    future.result()
                except BnnzooError as error:
                    failures[futures[future].name] = str(error)
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
    if report and is_main_process():
        path = write_report(root)
        echo(f"wrote {path}")
    if failures:
        lines = "; ".join(f"{name}: {message}" for name, message in failures.items())
        raise StudyError(f"{len(failures)} point(s) failed (the others are done): {lines}")
    return [point.name for point in pending]


def write_report(root: str | os.PathLike) -> Path:
    """Merge the finished points under ``root`` into ``root/report.md`` and its PNG figures."""
    root = Path(root)
    record = read_study(root)
    study = load_study(record["kind"], record["settings"])
    text = study.report(read_results(root), root, record.get("command"))
    path = root / REPORT_FILE
    atomic_write_text(path, text)
    return path
