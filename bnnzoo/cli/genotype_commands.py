"""``bnnzoo check`` and ``bnnzoo fmt``: validate and canonicalise genotype files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bnnzoo import dsl
from bnnzoo._atomic import atomic_write_text
from bnnzoo.errors import BnnzooError, GenotypeError


def register(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("check", help="report every error in genotype files")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.set_defaults(run=run_check)

    fmt = subparsers.add_parser("fmt", help="rewrite genotype files in canonical form")
    fmt.add_argument("files", nargs="+", type=Path, metavar="FILE")
    fmt.add_argument("--check", action="store_true", help="only report files that are not canonical")
    fmt.set_defaults(run=run_fmt)


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
    for path in args.files:
        try:
            errors = dsl.check(_read(path), str(path))
        except BnnzooError as error:
            errors = [error]
        for error in errors:
            print(error, file=sys.stderr)
        failed += bool(errors)
        if not errors:
            print(f"{path}: ok")
    if failed:
        print(f"{failed} of {len(args.files)} file(s) have errors", file=sys.stderr)
    return int(bool(failed))


def run_fmt(args: argparse.Namespace) -> int:
    status = 0
    for path in args.files:
        text = _read(path)
        try:
            canonical = dsl.to_text(dsl.parse(text, str(path)))
        except GenotypeError as error:
            print(error, file=sys.stderr)
            status = 1
            continue
        if canonical == text:
            continue
        if args.check:
            print(f"{path}: not in canonical form (run 'bnnzoo fmt {path}')")
            status = 1
        else:
            atomic_write_text(path, canonical)
            print(f"{path}: reformatted")
    return status
