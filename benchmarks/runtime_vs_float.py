"""bnnzoo.runtime against the float-simulated model and its real-valued twin, and its binary layers
against an XOR-popcount ceiling measured here.

    python benchmarks/runtime_vs_float.py [--models xnor_resnet18 mbconv_a] [--batch 1 64] [--threads 1 2]
                                          [--repeats 5] [--warmup 1] [--layer-repeats 200]

All in one process. Per model (random weights, exported to a packed file and loaded by the runtime):

1. images/s of (a) the float-simulated bnnzoo model in eager PyTorch, (b) the same network with
   real-valued weights and activations (plain nn.Conv2d) and (c) the runtime, at each batch size and
   thread count: every repeat times each variant once, interleaved; the median is shown
   (bnnzoo.runtime.bench);
2. per layer type of the runtime (batch 1, one thread): time, binary (or real) GMAC/s and the fraction
   of the ceiling, the ceiling being this script's L1-resident XOR + popcount loop on one thread
   (``_engine.xor_popcount_peak``); layer runs and ceiling windows (2 ms) are interleaved and the medians
   compared, so a change of load hits both alike. "with pack" adds the binarisation of each convolution's
   input to its time;
3. resident weight memory of each variant and the packed file size.

It ends with issue 15's targets beside the measured figures. Nothing is asserted: the figures depend
on the machine and its load, which is printed before and after (os.getloadavg, as `uptime`).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time

import numpy as np
import torch

from bnnzoo.runtime import _native, bench
from bnnzoo.runtime.program import BConv, Pack

CEILING_WINDOW = 0.002  # seconds per ceiling sample: about as long as one layer run


def layer_table(subjects: bench.Subjects, repeats: int) -> tuple[list[list[str]], dict[str, float]]:
    """Per layer type: median time, GMAC/s, fraction of the interleaved ceiling (batch 1, one thread)."""
    runtime = subjects.runtime
    engine = _native.engine()
    _, height, width = subjects.input_shape
    ops = runtime.ops(height, width)
    x = torch.randn(1, *subjects.input_shape)
    torch.set_num_threads(1)
    runs, ceilings = [], []
    runtime.profile(x)  # warm-up
    for _ in range(repeats):
        runs.append([op.seconds for op in runtime.profile(x)])
        ceilings.append(engine.xor_popcount_peak(runtime.isa, CEILING_WINDOW, 1))
    seconds = np.median(np.array(runs), axis=0)
    ceiling = statistics.median(ceilings)
    packs = {op.dst: t for op, t in zip(ops, seconds) if isinstance(op, Pack)}
    groups: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0, 0])  # time, with pack, macs, n
    for op, t in zip(ops, seconds):
        if isinstance(op, Pack):
            continue
        entry = groups[op.label]
        entry[0] += t
        entry[1] += t + (packs.get(op.src, 0.0) if isinstance(op, BConv) else 0.0)
        entry[2] += op.macs
        entry[3] += 1
    total = float(seconds.sum())
    rows = [["layer type", "ops", "ms", "share", "GMAC/s", "of ceiling", "with pack", "of ceiling"]]
    for label, (t, with_pack, macs, count) in sorted(groups.items(), key=lambda item: -item[1][0]):
        binary = label.startswith("binary conv")
        rate, rate_pack = (macs / t if t else 0.0), (macs / with_pack if with_pack else 0.0)
        rows.append(
            [
                label,
                str(count),
                f"{t * 1e3:.3f}",
                f"{t / total:.0%}",
                f"{rate / 1e9:.0f}" if macs else "-",
                f"{rate / ceiling:.0%}" if binary else "-",
                f"{rate_pack / 1e9:.0f}" if binary else "-",
                f"{rate_pack / ceiling:.0%}" if binary else "-",
            ]
        )
    pack_total = sum(packs.values())
    share = f"{pack_total / total:.0%}"
    rows.append(["pack (all)", str(len(packs)), f"{pack_total * 1e3:.3f}", share, "-", "-", "-", "-"])
    binary_ops = [(op, t) for op, t in zip(ops, seconds) if isinstance(op, BConv)]
    binary_macs = sum(op.macs for op, _ in binary_ops)
    binary_time = sum(t for _, t in binary_ops)
    summary = {
        "ceiling": ceiling,
        "body_ms": total * 1e3,
        "binary_fraction": binary_macs / binary_time / ceiling if binary_time else 0.0,
        "binary_fraction_with_pack": binary_macs / (binary_time + pack_total) / ceiling if binary_time else 0.0,
    }
    return rows, summary


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row: list[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    lines = [line(row) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["xnor_resnet18", "mbconv_a"], help="zoo names or packed files")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--threads", type=int, nargs="+", help="default: 1 and all of this machine's")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved samples per images/s figure")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--min-seconds", type=float, default=0.2, help="the least time one images/s sample runs")
    parser.add_argument("--layer-repeats", type=int, default=200, help="runs of the per-layer profile")
    args = parser.parse_args(argv)
    threads = args.threads or [1, bench.all_threads()]
    started = time.perf_counter()
    print(f"runtime_vs_float: {bench.load_average()}; torch {torch.__version__}; engine {_native.info()}")
    targets = []
    for model in args.models:
        subjects = bench.prepare(model)
        print(f"\n== {subjects.name}: {'x'.join(map(str, subjects.input_shape))} images, ISA {subjects.runtime.isa}")
        results = bench.measure(
            subjects,
            batches=args.batch,
            threads=threads,
            repeats=args.repeats,
            warmup=args.warmup,
            min_seconds=args.min_seconds,
            progress=lambda text: print(f"  {text} ({bench.load_average()})", file=sys.stderr, flush=True),
        )
        print(bench.report(subjects, results))
        rows, summary = layer_table(subjects, args.layer_repeats)
        print(
            f"\nper layer type, batch 1, one thread (medians of {args.layer_repeats} runs; ceiling "
            f"{summary['ceiling'] / 1e9:.0f} G binary MAC/s, XOR + popcount, L1-resident, one thread; body "
            f"{summary['body_ms']:.3f} ms):"
        )
        print(table(rows))
        rate = {(m.variant, m.batch, m.threads): m.images_per_s for m in results}
        resident = subjects.resident()
        checks = []
        if (1 in args.batch) and (1 in threads):
            checks += [
                ("batch 1, 1 thread: (c) / (a) >= 10", rate["runtime", 1, 1] / rate["simulated", 1, 1], 10),
                ("batch 1, 1 thread: (c) / (b) >= 3", rate["runtime", 1, 1] / rate["real", 1, 1], 3),
            ]
        if 64 in args.batch:
            most = max(threads)
            speedup = rate["runtime", 64, most] / rate["simulated", 64, most]
            checks.append((f"batch 64, {most} threads: (c) / (a) >= 5", speedup, 5))
        checks.append(("binary conv layers >= 25% of the ceiling", summary["binary_fraction"], 0.25))
        ratio = resident["runtime"] / subjects.packed_bytes
        checks.append(("resident weights within 10% of the packed file", ratio, None))
        for text, value, goal in checks:
            met = (abs(value - 1) <= 0.1) if goal is None else value >= goal
            shown = f"{value:.3f}" if goal is None else f"{value:.0%}" if goal < 1 else f"{value:.1f}x"
            targets.append(f"  {subjects.name:14s} {text:48s} {shown:>9s}  {'met' if met else 'MISSED'}")
    print("\ntargets (issue 15):")
    print("\n".join(targets))
    print(f"\nafter: {bench.load_average()}; {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
