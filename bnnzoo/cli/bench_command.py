"""``bnnzoo bench``: images/s of a model as the float-simulated model, its real-valued twin and the runtime."""

from __future__ import annotations

import argparse
import sys

from bnnzoo.cli.parsing import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = add_command(
        subparsers,
        "bench",
        description=(
            "Images/s of NAME|FILE, measured interleaved in one process, for (a) the float-simulated bnnzoo model "
            "in eager PyTorch, (b) the same network with real-valued weights and activations (plain nn.Conv2d) and "
            "(c) bnnzoo.runtime on its packed file; and the resident weight memory of each. NAME (a zoo name or .bnn "
            "file) gets random weights and is exported to a temporary packed file; FILE is a .packed.safetensors. "
            "See docs/runtime.md."
        ),
        examples=[
            "bnnzoo bench mbconv_a",
            "bnnzoo bench mbconv_a.packed.safetensors --batch 1 64 --threads 1 2",
            "BNNZOO_RUNTIME_ISA=avx2 bnnzoo bench xnor_resnet18 --batch 1 --repeats 9",
        ],
    )
    bench.add_argument("model", metavar="NAME|FILE", help="a zoo name, a .bnn genotype file or a packed file")
    bench.add_argument("--batch", type=int, nargs="+", default=[1, 64], metavar="N", help="batch sizes")
    bench.add_argument(
        "--threads", type=int, nargs="+", metavar="T", help="thread counts (default: 1 and all of this machine's)"
    )
    bench.add_argument("--repeats", type=int, default=5, help="interleaved samples per figure (the median is shown)")
    bench.add_argument("--warmup", type=int, default=1, help="untimed calls of each variant first")
    bench.add_argument("--min-seconds", type=float, default=0.2, help="the least time one sample runs")
    bench.add_argument("--isa", choices=["auto", "avx512", "avx2", "scalar"], help="the runtime's ISA (default: auto)")
    bench.set_defaults(run=run_bench)


def run_bench(args: argparse.Namespace) -> int:
    from bnnzoo.errors import BnnzooError
    from bnnzoo.runtime import bench

    if min(args.batch) < 1 or (args.threads and min(args.threads) < 1) or args.repeats < 1 or args.warmup < 0:
        raise BnnzooError("--batch and --threads must be >= 1, --repeats >= 1 and --warmup >= 0")
    if not 0 < args.min_seconds <= 60:
        raise BnnzooError("--min-seconds must be in (0, 60]")
    subjects = bench.prepare(args.model, isa=args.isa)
    shape = "x".join(map(str, subjects.input_shape))
    print(f"bnnzoo bench {subjects.name}: {shape} images, runtime ISA {subjects.runtime.isa}; {bench.load_average()}")
    results = bench.measure(
        subjects,
        batches=args.batch,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
        min_seconds=args.min_seconds,
        progress=lambda text: print(f"  {text}", file=sys.stderr, flush=True),
    )
    print(f"images/s, median of {args.repeats} interleaved samples; c / a, c / b: the runtime's speed-ups")
    print(bench.report(subjects, results))
    print(f"after: {bench.load_average()}")
    return 0
