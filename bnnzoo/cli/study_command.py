"""``bnnzoo study noise|shortcut|report``: run a study's points (resuming, in parallel, one per job) and merge them."""

from __future__ import annotations

import argparse
import shlex
import sys

from bnnzoo.cli.parsing import HelpFormatter, add_command
from bnnzoo.cli.search_command import add_schedule_options, add_sharpness_options, add_space_options, search_settings

NOISE_EXAMPLES = [
    "bnnzoo study noise --space bnas --channels 4 --layers 5 --image-size 16 --epochs 8 --train-limit 768 "
    "--seeds 3 --proxy-lr 5e-3 --proxy-train-limit 2000 -o runs/noise --jobs 2",
    "bnnzoo study noise ... -o runs/noise --list               the points and which are done",
    "bnnzoo study noise ... -o runs/noise --point 3 --no-report  one point (e.g. one cluster job)",
]
SHORTCUT_EXAMPLES = [
    "bnnzoo study shortcut --models mbconv_a,mbconv_b,mbconv_c --width-multiplier 0.25 --image-size 16 "
    "--seeds 2 --proxy-lr 5e-3 --proxy-train-limit 2000 -o runs/shortcut --jobs 2",
]


def words(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "study",
        examples=[*NOISE_EXAMPLES[:1], *SHORTCUT_EXAMPLES, "bnnzoo study report runs/noise"],
        description="Measure the paper's claims: a study runs many independent points (searches or trainings), "
        "each in its own folder, and merges whatever is done into DIR/report.md with PNG figures (docs/study.md).",
    )
    studies = p.add_subparsers(dest="study", required=True, metavar="STUDY", title="studies")

    noise = studies.add_parser(
        "noise",
        help="eps_A x eps_W x seeds: sharpness, stability, op preferences, proxy accuracy",
        description="The 2 x 2 design eps_A in {0, a} x eps_W in {0, w} x N seeds, each point a search with "
        "sharpness logged per epoch and a proxy training of its genotype.",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in NOISE_EXAMPLES),
        formatter_class=HelpFormatter,
    )
    add_space_options(noise)
    noise.add_argument("--eps-a", type=float, default=0.2, help="the eps_A of the noisy arms (supplement: 0.2)")
    noise.add_argument("--eps-w", type=float, default=0.25, help="the eps_W of the noisy arms (supplement: 0.25)")
    add_schedule_options(noise)
    add_sharpness_options(noise)
    _add_common(noise, "runs/study-noise")
    noise.set_defaults(run=run_noise)

    shortcut = studies.add_parser(
        "shortcut",
        help="the reduction-shortcut ablation of Table 1: zero, partial_duplicate, global_average",
        description="The same MBConv genotypes trained with each reduction shortcut at one budget, N seeds each.",
        epilog="examples:\n" + "\n".join(f"  {e}" for e in SHORTCUT_EXAMPLES),
        formatter_class=HelpFormatter,
    )
    shortcut.add_argument(
        "--models",
        type=words,
        default=("mbconv_a", "mbconv_b", "mbconv_c"),
        help="R1, R2, ...: zoo names or .bnn files",
    )
    shortcut.add_argument("--width-multiplier", type=float, default=0.25, help="scale every width (even, at least 2)")
    shortcut.add_argument("--image-size", type=int, default=None, help="input size (default: the genotype's, 32)")
    shortcut.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, cifar10, cifar100, imagefolder")
    shortcut.add_argument("--data-root", help="folder of a local dataset")
    _add_common(shortcut, "runs/study-shortcut")
    shortcut.set_defaults(run=run_shortcut)

    report = studies.add_parser(
        "report",
        help="merge the points that are done into DIR/report.md and its figures",
        description="Merge whatever point folders of a study exist (e.g. from separate cluster jobs) into "
        "DIR/report.md and its PNG figures.",
        formatter_class=HelpFormatter,
    )
    report.add_argument("folder", metavar="DIR", help="the study's folder (-o of the study command)")
    report.set_defaults(run=run_report)


def _add_common(p: argparse.ArgumentParser, output: str) -> None:
    p.add_argument("--seeds", type=int, default=3, help="seeds per arm (0..N-1)")
    p.add_argument("--proxy-epochs", type=int, default=2, help="proxy training epochs (two-step recipe, at least 2)")
    p.add_argument("--proxy-steps", type=int, help="proxy training: at most N steps per epoch")
    p.add_argument("--proxy-batch-size", type=int, default=64)
    p.add_argument("--proxy-lr", type=float, default=1e-3, help="proxy training: Adam's learning rate")
    p.add_argument("--proxy-train-limit", type=int, metavar="N", help="proxy training on the first N training images")
    p.add_argument("--proxy-test-limit", type=int, metavar="N", help="proxy test on the first N test images")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("-o", "--output", default=output, help="the study's folder")
    p.add_argument("--jobs", type=int, default=1, help="run N points at once, as separate processes")
    p.add_argument("--threads", type=int, help="torch threads per process (default: 1 with --jobs > 1)")
    p.add_argument(
        "--point", action="append", type=words, metavar="I", help="run only these points (index or name; repeatable)"
    )
    p.add_argument("--list", action="store_true", help="list the points and which are done, then stop")
    p.add_argument("--no-report", action="store_true", help="do not write the report (merge later: study report)")


def _proxy(args: argparse.Namespace):
    from bnnzoo.search.grid import ProxyConfig

    return ProxyConfig(
        args.proxy_epochs,
        args.proxy_steps,
        args.proxy_batch_size,
        args.proxy_train_limit,
        args.proxy_test_limit,
        args.proxy_lr,
    )


def run_noise(args: argparse.Namespace) -> int:
    from bnnzoo.search.config import SearchConfig
    from bnnzoo.study.noise import NoiseStudy

    search = SearchConfig(**search_settings(args), device=args.device)
    return _run(NoiseStudy(search, args.eps_a, args.eps_w, args.seeds, _proxy(args)), args)


def run_shortcut(args: argparse.Namespace) -> int:
    from bnnzoo.study.shortcut import ShortcutStudy

    study = ShortcutStudy(
        args.models,
        args.width_multiplier,
        args.image_size,
        args.seeds,
        args.dataset,
        args.data_root,
        args.device,
        _proxy(args),
    )
    return _run(study, args)


def _run(study, args: argparse.Namespace) -> int:
    from bnnzoo.study.layout import is_done
    from bnnzoo.study.runner import run_study, select

    only = [key for group in args.point for key in group] if args.point else None
    if args.list:
        for point in select(study.points(), only):
            state = "done" if is_done(args.output, point) else "pending"
            print(f"{point.index}\t{point.name}\t{state}")
        return 0
    command = "bnnzoo " + shlex.join(sys.argv[1:]) if sys.argv[1:2] == ["study"] else None
    try:
        run_study(
            study,
            args.output,
            jobs=args.jobs,
            threads=args.threads if args.threads or args.jobs == 1 else 1,
            only=only,
            report=not args.no_report,
            command=command,
        )
    except KeyboardInterrupt:
        print(
            f"interrupted: the points that are done are kept in {args.output}; run the same command to resume",
            file=sys.stderr,
        )
        raise
    return 0


def run_report(args: argparse.Namespace) -> int:
    from bnnzoo.study.runner import write_report

    print(f"wrote {write_report(args.folder)}")
    return 0
