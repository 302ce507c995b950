"""The error types bnnzoo raises for user mistakes.

Every error a user can cause is a :class:`BnnzooError`. The CLI prints ``str(error)`` and exits
non-zero instead of showing a traceback. Errors tied to a place in a genotype file read like a
compiler message: ``path:line:col: message``, followed by the offending line and a caret.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

MAX_REPORTED_ERRORS = 20
"""At most this many errors are reported per text; one final "and N more" stands for the rest."""
EXCERPT_WIDTH = 80
"""Characters of the offending line shown around the column; a long line is cut to this window."""


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
        self._source = source
        self._excerpt: str | None = None
        super().__init__(message)

    @property
    def excerpt(self) -> str:
        """The offending line (a window of it, when long) and a caret under the column."""
        if self._excerpt is None:
            source, position = self._source, self.position
            self._excerpt = _excerpt(source, position) if source is not None and position else ""
            self._source = None
        return self._excerpt

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
        self._source, self._excerpt = None, first.excerpt
        BnnzooError.__init__(self, self.message)

    def __str__(self) -> str:
        return "\n".join(str(error) for error in self.errors)


class MoreErrors(GenotypeError):
    """The final "and N more" entry that stands for the errors past :data:`MAX_REPORTED_ERRORS`."""

    def __init__(self, count: int, path: str) -> None:
        self.count = count
        super().__init__(f"and {count} more error{'s' if count != 1 else ''}", path=path)


def capped(errors: Iterable[GenotypeError]) -> list[GenotypeError]:
    """The first :data:`MAX_REPORTED_ERRORS` of ``errors``, then one :class:`MoreErrors` for the rest.

    ``errors`` may be a generator: the errors past the cap are only counted, never kept.
    """
    kept: list[GenotypeError] = []
    more, path = 0, "<string>"
    for error in errors:
        path = error.path
        if isinstance(error, MoreErrors):
            more += error.count
        elif len(kept) < MAX_REPORTED_ERRORS:
            kept.append(error)
        else:
            more += 1
    return [*kept, MoreErrors(more, path)] if more else kept


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
    line = _line(source, position.line)
    if line is None:
        return ""
    column = max(position.column, 1)
    start = max(0, min(column - 1 - EXCERPT_WIDTH // 2, len(line) - EXCERPT_WIDTH))
    text = line[start : start + EXCERPT_WIDTH].expandtabs(1)
    if start + EXCERPT_WIDTH < len(line):
        text += " ..."
    else:
        text = text.rstrip("\r")
    if not text.strip():
        return ""
    prefix = "... " if start else ""
    return f"    {prefix}{text}\n    {' ' * (len(prefix) + column - 1 - start)}^"


def _line(source: str, number: int) -> str | None:
    """Line ``number`` (1-based; lines end at \\n only, as Lark counts them), found without splitting."""
    if number < 1:
        return None
    start = 0
    for _ in range(number - 1):
        start = source.find("\n", start) + 1
        if start == 0:
            return None
    end = source.find("\n", start)
    return source[start : end if end >= 0 else len(source)]
