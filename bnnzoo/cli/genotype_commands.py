"""``bnnzoo check`` and ``bnnzoo fmt``: validate and canonicalise genotype files or zoo models.

Both stay light: they load the DSL only, never torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from bnnzoo import dsl
from bnnzoo._atomic import atomic_write_text
from bnnzoo._suggest import did_you_mean
from bnnzoo.cli.parsing import add_command
from bnnzoo.dsl.library import SUFFIX, zoo_genotype_names, zoo_genotype_path
from bnnzoo.errors import BnnzooError, GenotypeError

SOURCE = "FILE|ZOO_NAME"


def register(subparsers: argparse._SubParsersAction) -> None:
    check = add_command(
        subparsers,
        "check",
        description="Report every error in genotype files (path:line:col, with the line and a caret): "
        "syntax, header and body errors together. Zoo names check the installed genotype.",
        examples=["bnnzoo check my_model.bnn", "bnnzoo check genotypes/*.bnn", "bnnzoo check mbconv_a bnas_a"],
    )
    check.add_argument("files", nargs="+", metavar=SOURCE, help="genotype files or zoo names")
    check.set_defaults(run=run_check)

    fmt = add_command(
        subparsers,
        "fmt",
        description="Rewrite genotype files in canonical form (atomically); the leading comment block and "
        "meta lines are kept. Zoo genotypes are installed read-only: use --check or --stdout with them.",
        examples=[
            "bnnzoo fmt my_model.bnn",
            "bnnzoo fmt --check genotypes/*.bnn",
            "bnnzoo fmt --stdout mbconv_a > my_model.bnn",
        ],
    )
    fmt.add_argument("files", nargs="+", metavar=SOURCE, help="genotype files or zoo names")
    mode = fmt.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="only report files that are not canonical")
    mode.add_argument("--stdout", action="store_true", help="print the canonical text instead of rewriting")
    fmt.set_defaults(run=run_fmt)


def _source(argument: str) -> tuple[Path, bool]:
    """The file an argument names, and whether it is a zoo genotype (a name, not a path)."""
    path = Path(argument)
    if argument.endswith(SUFFIX) or os.sep in argument or path.exists():
        return path, False
    if argument in zoo_genotype_names():
        return zoo_genotype_path(argument), True
    raise BnnzooError(f"{argument}: no such file or zoo model{did_you_mean(argument, zoo_genotype_names())}")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BnnzooError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise BnnzooError(f"{path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise BnnzooError(f"{path}: cannot read: {exc.strerror}") from None


def run_check(args: argparse.Namespace) -> int:
    failed = 0
    for argument in args.files:
        try:
            path, _ = _source(argument)  # a zoo name's errors name its installed file
            errors = dsl.check(_read(path), str(path))
        except BnnzooError as error:
            errors = [error]
        for error in errors:
            print(error, file=sys.stderr)
        failed += bool(errors)
        if not errors:
            print(f"{argument}: ok")
    if failed:
        print(f"{failed} of {len(args.files)} file(s) have errors", file=sys.stderr)
    return int(bool(failed))


def run_fmt(args: argparse.Namespace) -> int:
    status = 0
    for argument in args.files:
        path, in_zoo = _source(argument)
        if in_zoo and not (args.check or args.stdout):
            raise BnnzooError(
                f"{argument} is a zoo genotype, installed read-only: use 'bnnzoo fmt --check {argument}', "
                f"or 'bnnzoo fmt --stdout {argument} > {argument}{SUFFIX}' for a copy to edit"
            )
        text = _read(path)
        try:
            canonical = dsl.to_text(dsl.parse(text, str(path)))
        except GenotypeError as error:
            print(error, file=sys.stderr)
            status = 1
            continue
        if args.stdout:
            print(canonical, end="")
        elif canonical == text:
            continue
        elif args.check:
            print(f"{path}: not in canonical form (run 'bnnzoo fmt {path}')")
            status = 1
        else:
            atomic_write_text(path, canonical)
            print(f"{path}: reformatted")
    return status
