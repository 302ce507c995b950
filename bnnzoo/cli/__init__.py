"""The ``bnnzoo`` command: a thin layer over the library.

Each command lives in its own module with ``register(subparsers)``; user mistakes surface as
:class:`~bnnzoo.errors.BnnzooError` and are printed without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from bnnzoo.errors import BnnzooError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    from bnnzoo.cli import fit_command, genotype_commands, model_commands

    parser = argparse.ArgumentParser(prog="bnnzoo", description="Searched binary neural networks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (genotype_commands, model_commands, fit_command):
        module.register(subparsers)
    for module_name in ("draw_command", "search_command", "train_commands", "hub_commands"):
        module = _optional_command(module_name)
        if module is not None:
            module.register(subparsers)
    return parser


def _optional_command(name: str):
    import importlib

    try:
        return importlib.import_module(f"bnnzoo.cli.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"bnnzoo.cli.{name}":
            raise
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or EXIT_OK)
    except BnnzooError as error:
        print(f"bnnzoo {args.command}: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. piped into `head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except KeyboardInterrupt:
        print(f"bnnzoo {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
