"""The ``bnnzoo`` command: a thin layer over the library.

Each command lives in a module of this package with ``register(subparsers)``, listed in
:data:`COMMANDS`. Only the module of the command being run is imported (the others appear in
``--help`` by their summary), so ``bnnzoo --help``, ``check`` and ``fmt`` start without loading
torch. User mistakes surface as :class:`~bnnzoo.errors.BnnzooError` and are printed without a
traceback. To add a command: write its module, then add a line to :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NamedTuple

from bnnzoo import __version__
from bnnzoo.cli.parsing import HelpFormatter
from bnnzoo.errors import BnnzooError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Command(NamedTuple):
    module: str  # under bnnzoo.cli; its register(subparsers) adds this command's parser
    summary: str  # the line in `bnnzoo --help`


# In --help order.
COMMANDS: dict[str, Command] = {
    "check": Command("genotype_commands", "report every error in genotype files"),
    "fmt": Command("genotype_commands", "rewrite genotype files in canonical form"),
    "list": Command("model_commands", "list the zoo's models"),
    "info": Command("model_commands", "op counts of a model, beside the paper's figures"),
    "fit": Command("fit_command", "fit a genotype to the paper's published op counts"),
    "draw": Command("draw_command", "draw genotypes as diagrams (SVG, PNG, PDF or Graphviz DOT)"),
    "search": Command("search_command", "search a genotype with bimodal parameter perturbation"),
    "study": Command("study_command", "measure the paper's claims: noise and shortcut studies, merged reports"),
    "train": Command("train_commands", "train a model with the two-step BNN recipe"),
    "eval": Command("train_commands", "top-1/top-5, loss and images/s of a model on a test set"),
    "publish": Command("hub_commands", "stage a Hub repository folder for trained weights, and upload it"),
    "export": Command("hub_commands", "write trained weights as a packed file (binary weights as sign bits)"),
    "bench": Command("bench_command", "images/s: float-simulated model, its real-valued twin, and the runtime"),
}

EXAMPLES = """\
examples:
  bnnzoo list                          the zoo's models and their trained weights
  bnnzoo check my_model.bnn mbconv_a   every error of a genotype file or zoo model
  bnnzoo info bnas_a                   op counts beside the paper's Table 3
  bnnzoo COMMAND --help                a command's options, defaults and examples
"""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser, with full options for ``command`` (every command when None) and summaries for the rest."""
    parser = argparse.ArgumentParser(
        prog="bnnzoo",
        description="Searched binary neural networks: genotypes, models, op counts, search, training, the Hub.",
        epilog=EXAMPLES,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"bnnzoo {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")
    wanted = COMMANDS[command].module if command in COMMANDS else None
    for name, (module, summary) in COMMANDS.items():
        if name in subparsers.choices:  # added with an earlier command of the same module
            continue
        if command is None or module == wanted:
            importlib.import_module(f"bnnzoo.cli.{module}").register(subparsers)
        else:
            subparsers.add_parser(name, help=summary)
    return parser


def _command(argv: Sequence[str]) -> str | None:
    """The command named in ``argv``: its first word that is not an option."""
    return next((word for word in argv if not word.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command(argv)
    parser = build_parser(command or "")
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
