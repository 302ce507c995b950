"""The error types bnnzoo raises for user mistakes.

Every error a user can cause is a :class:`BnnzooError`. The CLI prints ``str(error)`` and exits
non-zero instead of showing a traceback. Errors tied to a place in a genotype file read like a
compiler message: ``path:line:col: message``, followed by the offending line and a caret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class BnnzooError(Exception):
    """Base class of every error bnnzoo raises for bad input."""


@dataclass(frozen=True)
class Position:
    """A 1-based line and column in a genotype text."""

    line: int
    column: int


class GenotypeError(BnnzooError):
    """A problem in a genotype text, located at ``path:line:col``."""

    def __init__(
        self,
        message: str,
        *,
        path: str = "<string>",
        position: Position | None = None,
        source: str | None = None,
    ) -> None:
        self.message = message
        self.path = path
        self.position = position
        self.line = position.line if position else None
        self.column = position.column if position else None
        self.excerpt = _excerpt(source, position) if source is not None and position else ""
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.position is None else f"{self.path}:{self.line}:{self.column}"
        text = f"{where}: {self.message}"
        return f"{text}\n{self.excerpt}" if self.excerpt else text


class GenotypeSyntaxError(GenotypeError):
    """The text does not follow the grammar."""


class GenotypeValidationError(GenotypeError):
    """The text parses but describes an invalid or out-of-bounds network."""


class GenotypeErrors(GenotypeError):
    """Several problems in one text; ``errors`` lists all of them, the first is shown first."""

    def __init__(self, errors: Sequence[GenotypeError]) -> None:
        self.errors = list(errors)
        first = self.errors[0]
        self.message = first.message
        self.path = first.path
        self.position = first.position
        self.line, self.column = first.line, first.column
        self.excerpt = first.excerpt
        BnnzooError.__init__(self, str(self))

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class ModelError(BnnzooError):
    """A model cannot be built or its weights do not fit it."""


class WeightsError(BnnzooError):
    """A weights or checkpoint file is missing, truncated or does not match the model."""


class DataError(BnnzooError):
    """A dataset cannot be found or read."""


class HubError(BnnzooError):
    """A Hub repository cannot be reached, staged or read."""


class SearchError(BnnzooError):
    """A search cannot be configured or run."""


def _excerpt(source: str, position: Position) -> str:
    lines = source.split("\n")
    if not 1 <= position.line <= len(lines):
        return ""
    text = lines[position.line - 1].expandtabs(1).rstrip("\r")
    if not text.strip():
        return ""
    return f"    {text}\n    {' ' * (position.column - 1)}^"
