"""``bnnzoo fit``: reconstruct a genotype from published op counts."""

from __future__ import annotations

import argparse

from bnnzoo.cli.parsing import add_command, add_progress_flag, show_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    fit = add_command(
        subparsers,
        "fit",
        description="Reconstruct a genotype whose op counts match a row of the paper's Table 3, by simulated "
        "annealing inside the documented space (docs/reconstruction.md).",
        examples=[
            "bnnzoo fit --published mbconv_a",
            "bnnzoo fit --published bnas_mini -o bnas_mini.bnn",
            "bnnzoo fit --published mbconv_b --iterations 500 --restarts 1 --seed 1",
        ],
    )
    fit.add_argument("--published", required=True, metavar="NAME", help="zoo name of a Table 3 row, e.g. mbconv_a")
    fit.add_argument("-o", "--output", metavar="FILE", help="write the genotype here (default: print it)")
    fit.add_argument("--iterations", type=int, default=3000, metavar="N", help="annealing steps per restart")
    fit.add_argument("--restarts", type=int, default=4, metavar="N", help="independent annealing runs; the best wins")
    fit.add_argument("--seed", type=int, default=0, metavar="N", help="random seed")
    add_progress_flag(fit)
    fit.set_defaults(run=run_fit)


def run_fit(args: argparse.Namespace) -> int:
    from bnnzoo._progress import progress_bar
    from bnnzoo.dsl import dump, to_text
    from bnnzoo.fit import fit_published

    total = args.iterations * args.restarts
    with progress_bar(show_progress(args), total=total, desc=f"fit {args.published}", unit="step") as bar:
        genotype, report = fit_published(args.published, args.iterations, args.restarts, args.seed, bar.update)
    if args.output:
        dump(genotype, args.output)
        print(f"wrote {args.output}")
    else:
        print(to_text(genotype), end="")
    worst = max(abs(error) for error in report["errors"].values())
    print(f"worst relative error: {worst * 100:.2f}%")
    return 0
