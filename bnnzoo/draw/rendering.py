"""Writing diagrams to files: DOT source always, SVG, PNG and PDF through Graphviz's ``dot`` program."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from bnnzoo._atomic import atomic_path
from bnnzoo.errors import BnnzooError

if TYPE_CHECKING:
    import graphviz

FORMATS = ("svg", "png", "pdf", "dot")
EXTENSIONS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}
INSTALL_HINT = (
    "install the Graphviz system package ('apt-get install graphviz' on Debian/Ubuntu, "
    "'brew install graphviz' on macOS); the graphviz Python package alone is not enough"
)


class DrawError(BnnzooError):
    """A diagram cannot be drawn or written."""


class GraphvizMissingError(DrawError):
    """Graphviz's ``dot`` program is not installed, so only DOT source can be written.

    ``written`` lists the files written anyway (the ``.dot`` source of the diagram).
    """

    def __init__(self, format: str, written: list[Path] | None = None) -> None:
        self.format = format
        self.written = list(written or [])
        message = f"cannot make {format}: Graphviz's 'dot' program is not on PATH; {INSTALL_HINT}"
        if self.written:
            message += "; wrote the DOT source instead: " + ", ".join(str(path) for path in self.written)
        super().__init__(message)


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """``format`` if given (checked), else the format named by ``path``'s extension."""
    if format is not None:
        if format not in FORMATS:
            raise DrawError(f"unknown diagram format '{format}'; expected one of: {', '.join(FORMATS)}")
        return format
    suffix = Path(path).suffix.lower()
    if suffix not in EXTENSIONS:
        known = ", ".join(EXTENSIONS)
        what = f"extension '{suffix}'" if suffix else "no extension"
        raise DrawError(f"{path}: {what}; name a diagram file {known}, or pass a format")
    return EXTENSIONS[suffix]


def render(
    digraph: graphviz.Digraph,
    out_path: str | os.PathLike,
    format: str | None = None,
    *,
    fallback_dot: bool = True,
) -> list[Path]:
    """Write ``digraph`` to ``out_path`` as ``format`` (default: from the extension), atomically.

    Returns the paths written. ``dot`` source needs nothing else; SVG, PNG and PDF need Graphviz's
    ``dot`` program: without it, the DOT source goes to ``out_path`` with a ``.dot`` extension
    (unless ``fallback_dot`` is false) and :class:`GraphvizMissingError` is raised.
    """
    import graphviz

    path = Path(out_path)
    format = output_format(path, format)
    if format == "dot":
        _write(path, digraph.source.encode("utf-8"))
        return [path]
    if not dot_available():
        raise _missing(digraph, path, format, fallback_dot)
    try:
        data = digraph.pipe(format=format, quiet=True)
    except graphviz.ExecutableNotFound:
        raise _missing(digraph, path, format, fallback_dot) from None
    except graphviz.CalledProcessError as exc:
        detail = (exc.stderr or b"").decode("utf-8", "replace").strip()
        raise DrawError(f"{path}: Graphviz's dot failed: {detail or exc}") from None
    _write(path, data)
    return [path]


def _missing(digraph: graphviz.Digraph, path: Path, format: str, fallback_dot: bool) -> GraphvizMissingError:
    written = []
    if fallback_dot:
        source_path = path.with_suffix(".dot")
        _write(source_path, digraph.source.encode("utf-8"))
        written.append(source_path)
    return GraphvizMissingError(format, written)


def _write(path: Path, data: bytes) -> None:
    """Write atomically, with the permissions a plain ``open()`` would give (not mkstemp's 0600)."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
