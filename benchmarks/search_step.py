"""Search-iteration throughput on CPU at the BNAS search defaults (C = 16, 8 cells, batch 64).

Prints images/s for a full first-order iteration (architecture step + weight step) and for the
weight step alone, with the bimodal perturbation off and on (eps_A = 0.2, eps_W = 0.25), the
perturbation overhead as a ratio measured in the same run, and the peak memory of each
configuration (each runs in a fresh subprocess, so peaks don't mix).

Reference figures for the official BNAS supernet at this configuration on these 2-core machines
(torch 2.14, 2 threads, batch 64), as given in the issue: 3.9 images/s for a full iteration,
7.7 images/s for a weight step, 7.4 GB peak memory.

    python benchmarks/search_step.py [--steps 3] [--batch 64] [--threads 2] [--channels-last]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

OFFICIAL = {"full": 3.9, "weight": 7.7, "peak_gb": 7.4}


def measure(args: argparse.Namespace, eps_a: float, eps_w: float) -> dict:
    import torch

    from bnnzoo.search.config import SearchConfig
    from bnnzoo.search.engine import Searcher

    torch.set_num_threads(args.threads)
    config = SearchConfig(
        space="bnas", dataset="synthetic", limit=4 * args.batch, batch_size=args.batch, output="/tmp/bnnzoo-bench"
    )
    searcher = Searcher(config)
    if args.channels_last:
        searcher.model.to(memory_format=torch.channels_last)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, 32, 32, generator=generator)
    labels = torch.randint(0, 10, (args.batch,), generator=generator)
    if args.channels_last:
        images = images.contiguous(memory_format=torch.channels_last)

    def timed(step) -> float:
        step()  # warm-up
        started = time.perf_counter()
        for _ in range(args.steps):
            step()
        return args.batch * args.steps / (time.perf_counter() - started)

    weight = timed(lambda: searcher.weight_step(images, labels, eps_a, eps_w))
    full = timed(lambda: (searcher.arch_step(images, labels), searcher.weight_step(images, labels, eps_a, eps_w)))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    return {"weight": weight, "full": full, "peak_gb": peak_gb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--child", nargs=2, type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args, *args.child)))
        return
    results = {}
    for label, eps in (("off", (0.0, 0.0)), ("on", (0.2, 0.25))):
        command = [sys.executable, __file__, "--child", *map(str, eps), "--steps", str(args.steps)]
        command += ["--batch", str(args.batch), "--threads", str(args.threads)]
        command += ["--channels-last"] if args.channels_last else []
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[label] = json.loads(output.strip().splitlines()[-1])
    print(f"BNAS supernet, C=16, 8 cells, batch {args.batch}, {args.threads} threads, {args.steps} timed steps")
    print(f"{'perturbation':14s} {'full it. img/s':>15s} {'weight step img/s':>18s} {'peak GB':>8s}")
    for label, r in results.items():
        print(f"{label:14s} {r['full']:15.2f} {r['weight']:18.2f} {r['peak_gb']:8.2f}")
    off, on = results["off"], results["on"]
    print(f"perturbation overhead (full iteration): {(off['full'] / on['full'] - 1) * 100:+.1f}% step time")
    print(f"perturbation overhead (weight step):    {(off['weight'] / on['weight'] - 1) * 100:+.1f}% step time")
    print(
        f"vs the official BNAS supernet (issue's figures): full iteration {on['full'] / OFFICIAL['full']:.2f}x, "
        f"weight step {on['weight'] / OFFICIAL['weight']:.2f}x, peak memory {on['peak_gb'] / OFFICIAL['peak_gb']:.2f}x"
    )


if __name__ == "__main__":
    main()
