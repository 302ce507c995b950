"""The cost of ``--sharpness``: one sharpness measurement against one search step, measured in one run.

On a BNAS supernet at the given size, times (interleaved, median of ``--repeats``) one full search
step (architecture step + perturbed weight step at ``--batch``) and one sharpness measurement on
``--images`` validation images, and prints the ratio: how many search steps one epoch's sharpness
costs. The sharpness share of an epoch is then ratio / (steps per epoch): large next to a tiny epoch,
small next to a real one (DARTS on CIFAR: 391 steps per epoch).

    python benchmarks/sharpness_cost.py [--channels 8] [--layers 5] [--size 16] [--batch 32] [--images 64]
"""

from __future__ import annotations

import argparse
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, default=8)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--size", type=int, default=16)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from bnnzoo.search.config import SearchConfig
    from bnnzoo.search.engine import Searcher
    from bnnzoo.search.sharpness import measure_sharpness

    torch.set_num_threads(args.threads)
    config = SearchConfig(
        space="bnas",
        dataset="synthetic",
        channels=args.channels,
        layers=args.layers,
        image_size=args.size,
        limit=max(4 * args.batch, 2 * args.images),
        batch_size=args.batch,
        sharpness_images=args.images,
        sharpness_draws=args.draws,
        output="/tmp/bnnzoo-bench-sharpness",
        overwrite=True,
        progress=False,
    )
    searcher = Searcher(config, echo=None)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(args.batch, 3, args.size, args.size, generator=generator)
    labels = torch.randint(0, 10, (args.batch,), generator=generator)

    def step() -> None:
        searcher.arch_step(images, labels)
        searcher.weight_step(images, labels, 0.2, 0.25)

    def sharpness() -> dict:
        return measure_sharpness(
            searcher.model, searcher.arch, searcher.binary_weights, searcher.val_set, config, searcher.device
        )

    step(), sharpness()  # warm-up
    step_times, sharp_times, iterations = [], [], []
    for _ in range(args.repeats):
        started = time.perf_counter()
        step()
        step_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        iterations.append(sharpness()["sharpness_alpha_iterations"])
        sharp_times.append(time.perf_counter() - started)
    step_s, sharp_s = statistics.median(step_times), statistics.median(sharp_times)
    print(
        f"BNAS supernet C={args.channels}, {args.layers} cells, {args.size}x{args.size}, {args.threads} thread(s): "
        f"search step (batch {args.batch}) {step_s:.3f} s; sharpness ({args.images} images, {args.draws} draws, "
        f"{statistics.median(iterations):.0f} power iterations) {sharp_s:.3f} s"
    )
    print(f"one epoch's sharpness = {sharp_s / step_s:.1f} search steps")


if __name__ == "__main__":
    main()
