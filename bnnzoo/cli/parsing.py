"""What every command's parser shares: help with defaults and examples, hidden aliases, --no-progress.

Command modules build their parsers with :func:`add_command`, which takes the one-line summary
from :data:`bnnzoo.cli.COMMANDS` and appends the examples; :class:`HelpFormatter` shows each
option's default. Old spellings of renamed options stay accepted through :func:`hidden_alias`.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from typing import Any


class HelpFormatter(argparse.HelpFormatter):
    """Wraps descriptions but keeps the line breaks of text that has them (the examples), and appends
    ``(default: X)`` where an option has a real default (not None, not an on/off flag) and its help
    does not already name one."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        note = _default_note(action)
        return f"{action.help or ''} {note}".lstrip() if note else action.help

    def _format_action(self, action: argparse.Action) -> str:
        note = None if action.help else _default_note(action)
        if note:  # argparse lists an option without help with no text at all
            action = copy.copy(action)
            action.help = note
        return super()._format_action(action)


def _default_note(action: argparse.Action) -> str | None:
    """``(default: X)`` for an option with a real default (not None, not an on/off flag) whose help does
    not already say; None otherwise."""
    default, text = action.default, action.help or ""
    if (
        text == argparse.SUPPRESS
        or "default" in text
        or default is None
        or default is argparse.SUPPRESS
        or isinstance(default, bool)
        or not (action.option_strings or action.nargs == argparse.OPTIONAL)
    ):
        return None
    items = default if isinstance(default, (list, tuple)) else [default]
    shown = ",".join(f"{item:g}" if isinstance(item, float) else str(item) for item in items)
    return f"(default: {shown.replace('%', '%%')})"


def add_command(
    subparsers: argparse._SubParsersAction,
    name: str,
    examples: Sequence[str],
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The parser of command ``name``: its summary from COMMANDS, ``description``, and ``examples``."""
    from bnnzoo.cli import COMMANDS

    summary = COMMANDS[name].summary
    lines = "\n".join(f"  {example}" for example in examples)
    return subparsers.add_parser(
        name,
        help=summary,
        description=description or summary[0].upper() + summary[1:] + ".",
        epilog=f"examples:\n{lines}",
        formatter_class=HelpFormatter,
    )


def hidden_alias(parser: argparse.ArgumentParser, old: str, canonical: str, **kwargs: Any) -> None:
    """Accept the old spelling ``old`` of option ``canonical`` without listing it in --help."""
    dest = canonical.lstrip("-").replace("-", "_")
    parser.add_argument(old, dest=kwargs.pop("dest", dest), help=argparse.SUPPRESS, **kwargs)


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """``--no-progress``; ``args.progress`` is False with it and None (decide later) without it."""
    parser.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=None,
        help="no progress bar (one is shown on a terminal)",
    )


def show_progress(args: argparse.Namespace) -> bool:
    """A progress bar unless --no-progress was given or stderr is not a terminal."""
    return getattr(args, "progress", None) is not False and sys.stderr.isatty()
