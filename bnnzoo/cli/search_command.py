"""``bnnzoo search``: differentiable binary NAS with bimodal perturbation, emitting a .bnn file."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from bnnzoo.cli.parsing import add_command, hidden_alias
from bnnzoo.errors import SearchError
from bnnzoo.search.config import OP_NORMS, SearchConfig

_SUFFIXES = {"k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def quantity(text: str) -> float:
    """``10.6M`` -> 10.6e6."""
    number, factor = (text[:-1], _SUFFIXES[text[-1]]) if text and text[-1] in _SUFFIXES else (text, 1.0)
    try:
        return float(number) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number like 10.6M: {text!r}") from None


def floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def register(subparsers: argparse._SubParsersAction) -> None:
    p = add_command(
        subparsers,
        "search",
        examples=[
            "bnnzoo search --space bnas --channels 8 --layers 5 --image-size 16 --epochs 4 -o runs/quick",
            "bnnzoo search --space mbconv --eps-a 0,0.1,0.2 --eps-w 0,0.25 -o runs/grid",
            "bnnzoo search --space mbconv --target-ops 10.6M -o runs/budget",
            "bnnzoo search --space bnas --epochs 8 --sharpness -o runs/sharp",
        ],
    )
    add_space_options(p)
    p.add_argument("-o", "--output", default="runs/search", help="output folder")
    p.add_argument("--name", default="searched", help="the genotype's name and file stem")
    p.add_argument("--eps-a", type=floats, default=[0.0], help="architecture noise scale(s), e.g. 0,0.1,0.2")
    p.add_argument("--eps-w", type=floats, default=[0.0], help="weight noise scale(s), e.g. 0,0.25")
    p.add_argument("--ramp", action="store_true", help="ramp the noise linearly over the epochs")
    add_schedule_options(p)
    p.add_argument("--target-ops", type=quantity, help="target Equiv. Ops, e.g. 10.6M")
    p.add_argument("--target-weight", type=float, default=1.0)
    p.add_argument(
        "--sharpness", action="store_true", help="log the sharpness along alpha and the weights every epoch (slower)"
    )
    add_sharpness_options(p)
    p.add_argument("--proxy-epochs", type=int, default=2, help="grid search: proxy training epochs")
    p.add_argument("--proxy-steps", type=int, help="grid search: proxy steps per epoch")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--amp", action="store_true", help="bf16 mixed precision (CUDA only)")
    p.add_argument("--resume", action="store_true", help="continue from the output folder's checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again in an output folder that holds a run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (one is shown on a terminal)")
    p.set_defaults(run=run_search_command)


def add_space_options(p: argparse.ArgumentParser) -> None:
    """The dataset, budget and supernet options (shared with `bnnzoo study noise`)."""
    p.add_argument("--space", default="bnas", help="bnas (cells) or mbconv (layer lists)")
    p.add_argument("--dataset", default="fashion_mnist", help="fashion_mnist, cifar10, cifar100, imagefolder")
    p.add_argument("--data-root", help="folder of a local dataset (CIFAR in the torchvision layout, image folders)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--train-limit", dest="limit", type=int, metavar="N", help="use only the first N training images")
    hidden_alias(p, "--limit", "--train-limit", dest="limit", type=int)
    p.add_argument("--max-steps", type=int, help="at most N steps per epoch")
    p.add_argument("--image-size", type=int, default=None, help="input size (default 32: Fashion-MNIST padded from 28)")
    p.add_argument("--channels", type=int, default=16, help="bnas: initial channels")
    p.add_argument(
        "--op-norm",
        default=SearchConfig.op_norm,
        choices=OP_NORMS,
        help="bnas: balance the mixed ops by 1/sqrt(fan_in) kernels, or by DARTS's per-op BatchNorm",
    )
    p.add_argument("--layers", type=int, default=8, help="bnas: number of cells")
    p.add_argument("--widths", type=ints, default=(16, 24, 32, 64), help="mbconv: stage widths")
    p.add_argument("--depths", type=ints, default=(1, 2, 2, 2), help="mbconv: layers per stage")
    p.add_argument(
        "--strides", type=ints, default=None, help="mbconv: stride of each stage's first layer (default 1,2,2,...)"
    )
    p.add_argument("--stem-channels", type=int, default=16, help="mbconv: stem channels")
    p.add_argument("--kernels", type=ints, default=None, help="mbconv: candidate kernels (default 3,5)")
    p.add_argument("--expansions", type=ints, default=None, help="mbconv: candidate expansions (default 1,2,3,4,6)")


def add_schedule_options(p: argparse.ArgumentParser) -> None:
    """The optimisers' and the temperature's options (shared with `bnnzoo study noise`)."""
    p.add_argument("--weight-optimizer", default="sgd", help="sgd (DARTS) or adam (BNN practice)")
    p.add_argument("--lr", type=float, default=0.025, help="weight learning rate")
    p.add_argument(
        "--arch-lr",
        type=float,
        default=None,
        help="architecture Adam rate (default: matched to the number of architecture steps; DARTS: 3e-4)",
    )
    p.add_argument("--arch-schedule", default="cosine", help="cosine (to 0 over the search epochs) or constant (DARTS)")
    p.add_argument(
        "--warmup-epochs", type=int, default=None, help="weight-only epochs first (default: epochs // 4; DARTS: 0)"
    )
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature of the mixing weights")
    p.add_argument(
        "--final-temperature",
        type=float,
        default=SearchConfig.final_temperature,
        help="anneal the temperature geometrically to this by the last epoch (DARTS: 1)",
    )


def add_sharpness_options(p: argparse.ArgumentParser) -> None:
    """The settings of --sharpness (bnnzoo/search/sharpness.py)."""
    p.add_argument("--sharpness-images", type=int, default=256, help="the fixed validation subset it is measured on")
    p.add_argument("--sharpness-rho", type=float, default=0.1, help="relative radius of the weight perturbation")
    p.add_argument("--sharpness-draws", type=int, default=4, help="random weight directions averaged")


def search_settings(args: argparse.Namespace) -> dict:
    """The SearchConfig fields of :func:`add_space_options`, :func:`add_schedule_options` and
    :func:`add_sharpness_options`."""
    extra = {}
    if args.kernels:
        extra["kernels"] = args.kernels
    if args.expansions:
        extra["expansions"] = args.expansions
    return dict(
        space=args.space,
        dataset=args.dataset,
        data_root=args.data_root,
        epochs=args.epochs,
        batch_size=args.batch_size,
        limit=args.limit,
        max_steps=args.max_steps,
        image_size=args.image_size,
        channels=args.channels,
        op_norm=args.op_norm,
        layers=args.layers,
        widths=args.widths,
        depths=args.depths,
        strides=args.strides,
        stem_channels=args.stem_channels,
        weight_optimizer=args.weight_optimizer,
        weight_lr=args.lr,
        arch_lr=args.arch_lr,
        arch_schedule=args.arch_schedule,
        warmup_epochs=args.warmup_epochs,
        temperature=args.temperature,
        final_temperature=args.final_temperature,
        sharpness_images=args.sharpness_images,
        sharpness_rho=args.sharpness_rho,
        sharpness_draws=args.sharpness_draws,
        **extra,
    )


def _config(args: argparse.Namespace) -> SearchConfig:
    return SearchConfig(
        **search_settings(args),
        output=args.output,
        name=args.name,
        overwrite=args.overwrite,
        eps_a=args.eps_a[0],
        eps_w=args.eps_w[0],
        ramp=args.ramp,
        target_ops=args.target_ops,
        target_weight=args.target_weight,
        sharpness=args.sharpness,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        progress=not args.no_progress and sys.stderr.isatty(),
    )


def run_search_command(args: argparse.Namespace) -> int:
    from bnnzoo.search.engine import run_search

    if not args.eps_a or not args.eps_w:
        raise SearchError("--eps-a and --eps-w need at least one value")
    config = _config(args)
    for eps_a in args.eps_a:  # every grid point is checked before anything runs
        for eps_w in args.eps_w:
            replace(config, eps_a=eps_a, eps_w=eps_w).validate()
    if len(args.eps_a) > 1 or len(args.eps_w) > 1:
        from bnnzoo.search.grid import ProxyConfig, grid_search

        proxy = ProxyConfig(args.proxy_epochs, args.proxy_steps, args.batch_size, args.limit, args.limit)
        points, best = grid_search(config, args.eps_a, args.eps_w, proxy)
        for point in points:
            print(f"eps_a={point.eps_a:g} eps_w={point.eps_w:g}: proxy top-1 {point.proxy_top1 * 100:.2f}%")
        print(f"best: eps_a={best.eps_a:g} eps_w={best.eps_w:g}; results in {args.output}/grid_results.md")
        print(f"wrote {args.output}/{args.name}.bnn")
        return 0
    try:
        result = run_search(config, resume=args.resume)
    except KeyboardInterrupt:
        print(
            f"interrupted: checkpoint saved in {args.output}; continue with the same command and --resume",
            file=sys.stderr,
        )
        raise
    print(f"wrote {result.genotype_path} (log: {result.log_path}, curves: {result.curves_path})")
    return 0
