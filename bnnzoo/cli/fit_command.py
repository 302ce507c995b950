"""``bnnzoo fit``: reconstruct a genotype from published op counts."""

from __future__ import annotations

import argparse

from bnnzoo.dsl import dump, to_text
from bnnzoo.profile.fit import fit_published


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = subparsers.add_parser("fit", help="fit a genotype to the paper's published op counts")
    fit.add_argument("--published", required=True, metavar="NAME", help="zoo name of a Table 3 row, e.g. mbconv_a")
    fit.add_argument("-o", "--output", help="write the genotype here (default: print it)")
    fit.add_argument("--iterations", type=int, default=3000)
    fit.add_argument("--restarts", type=int, default=4)
    fit.add_argument("--seed", type=int, default=0)
    fit.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    genotype, report = fit_published(args.published, args.iterations, args.restarts, args.seed)
    if args.output:
        dump(genotype, args.output)
        print(f"wrote {args.output}")
    else:
        print(to_text(genotype), end="")
    worst = max(abs(error) for error in report["errors"].values())
    print(f"worst relative error: {worst * 100:.2f}%")
    return 0
