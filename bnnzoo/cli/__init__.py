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
    from bnnzoo.cli import (
        draw_command,
        fit_command,
        genotype_commands,
        hub_commands,
        model_commands,
        search_command,
        train_commands,
    )

    parser = argparse.ArgumentParser(prog="bnnzoo", description="Searched binary neural networks.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    modules = (
        genotype_commands,  # check, fmt
        model_commands,  # list, info
        fit_command,
        draw_command,
        search_command,
        train_commands,  # train, eval
        hub_commands,  # publish, export
    )
    for module in modules:
        module.register(subparsers)
    return parser


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
