"""``bnnzoo list``: the zoo's models."""

from __future__ import annotations

import argparse
import fnmatch

from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = subparsers.add_parser("list", help="list the zoo's models")
    listing.add_argument("pattern", nargs="?", default="*", help="a glob such as 'mbconv_*'")
    listing.set_defaults(run=run_list)


def run_list(args: argparse.Namespace) -> int:
    for name in zoo_genotype_names():
        if fnmatch.fnmatch(name, args.pattern):
            genotype = zoo_genotype(name)
            print(f"{name:20s} {genotype.space:7s} {'x'.join(map(str, genotype.input_shape))}")
    return 0
