"""Does the search beat random sampling of its own space? (Li & Talwalkar 2019; Yu et al. 2020)

For each space, on Fashion-MNIST:

1. search ``--seeds`` times with the perturbation off (eps_A = eps_W = 0) and on (eps_A = 0.2,
   eps_W = 0.25);
2. draw ``--random`` genotypes uniformly from the same space (same skeleton, same derivation rule),
   keeping only those within +-15 % of the searched genotypes' median Equiv. Ops;
3. train every genotype with the same short proxy recipe (the package's two-step recipe) and score
   it on the first ``--test-limit`` images of the TEST split, which neither the search (training
   split) nor the proxy training saw.

It prints mean +- std of the test top-1 per arm and each searched genotype's rank among the random
ones, and writes everything to ``OUT/results.json`` (a rerun reuses finished items). The defaults
are a CPU-sized check; ``--preset gpu`` is the full-size run (docs/search.md).

``--reuse DIR`` takes the searched genotypes of an earlier run instead of searching again, so the
same genotypes can be scored with another proxy (say a longer one, to lower the proxy's noise);
the random draws replay identically, since they depend only on the searched genotypes' costs.

    python benchmarks/search_vs_random.py -o runs/search_vs_random
    python benchmarks/search_vs_random.py --preset gpu --device cuda -o runs/svr_gpu
    python benchmarks/search_vs_random.py --reuse runs/search_vs_random --proxy-epochs 4 -o runs/svr_long
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from bnnzoo.dsl import dump, load_genotype
from bnnzoo.profile import profile
from bnnzoo.search import SearchConfig, run_search
from bnnzoo.search.engine import build_supernet
from bnnzoo.search.sample import random_genotype
from bnnzoo.train.config import TrainConfig
from bnnzoo.train.recipe import train

SPACES = {
    "bnas": dict(space="bnas", channels=8, layers=5),
    "mbconv": dict(space="mbconv", widths=(8, 16, 16, 32), depths=(1, 1, 1, 1), stem_channels=8, expansions=(1, 2, 3)),
}
PRESETS = {
    "cpu": dict(
        search_epochs=4,
        limit=2000,
        batch_size=32,
        image_size=16,
        proxy_epochs=2,
        proxy_train_limit=4000,
        test_limit=2000,
    ),
    "gpu": dict(
        search_epochs=20,
        limit=20000,
        batch_size=64,
        image_size=32,
        proxy_epochs=10,
        proxy_train_limit=None,
        test_limit=None,
    ),
}
ARMS = {"search, eps off": (0.0, 0.0), "search, eps 0.2/0.25": (0.2, 0.25)}
OPS_BAND = 0.15
MAX_DRAWS = 5000


def proxy_top1(genotype_path: Path, output: Path, args: argparse.Namespace) -> float:
    """Test top-1 after the same short two-step training for every genotype."""
    result = train(
        TrainConfig(
            model=str(genotype_path),
            dataset="fashion_mnist",
            epochs=args.proxy_epochs,
            batch_size=64,
            train_limit=args.proxy_train_limit,
            test_limit=args.test_limit,
            seed=0,
            device=args.device,
            output_dir=str(output),
            overwrite=True,
            progress=False,
        )
    )
    return float(result.test_top1)


def search_config(space: str, seed: int, eps: tuple[float, float], output: Path, args) -> SearchConfig:
    return SearchConfig(
        **SPACES[space],
        dataset="fashion_mnist",
        epochs=args.search_epochs,
        limit=args.limit,
        batch_size=args.batch_size,
        image_size=args.image_size,
        eps_a=eps[0],
        eps_w=eps[1],
        op_norm=args.op_norm if space == "bnas" else "scale",
        seed=seed,
        device=args.device,
        output=str(output),
        overwrite=True,
        progress=False,
    )


def searched(key: str, config: SearchConfig, reused: dict) -> dict:
    """Search (or take the genotype of ``reused[key]``, an earlier run's item): genotype, cost, entropy."""
    if key in reused:
        path = Path(reused[key]["genotype"])
        return dict(genotype=str(path), entropy=reused[key]["entropy"], search_seconds=reused[key]["search_seconds"])
    started = time.perf_counter()
    found = run_search(config, echo=None)
    return dict(
        genotype=str(found.genotype_path),
        entropy=found.history[-1]["alpha_entropy_normalized"],
        search_seconds=time.perf_counter() - started,
    )


def run_space(space: str, args: argparse.Namespace, results: dict, save) -> None:
    root = Path(args.output) / space
    items = results.setdefault(space, {})
    reused = json.loads((Path(args.reuse) / "results.json").read_text()).get(space, {}) if args.reuse else {}
    for arm, eps in ARMS.items():
        for seed in range(args.seeds):
            key = f"{arm} / seed {seed}"
            if key in items:
                continue
            folder = root / f"{'clean' if eps == (0.0, 0.0) else 'perturbed'}-seed{seed}"
            item = searched(key, search_config(space, seed, eps, folder, args), reused)
            started = time.perf_counter()
            top1 = proxy_top1(Path(item["genotype"]), folder / "proxy", args)
            items[key] = dict(
                arm=arm,
                **item,
                equiv_ops=profile(load_genotype(item["genotype"])).equiv_ops,
                proxy_seconds=time.perf_counter() - started,
                top1=top1,
            )
            save()
            print(f"{space} {key}: top-1 {100 * top1:.2f}%, entropy {items[key]['entropy']:.3f}", flush=True)
    searched_ops = [item["equiv_ops"] for item in items.values() if item["arm"] in ARMS]
    target = statistics.median(searched_ops)
    supernet = build_supernet(search_config(space, 0, (0, 0), root, args), 1, 10, args.image_size)
    generator = torch.Generator().manual_seed(1234)
    drawn = 0
    for index in range(args.random):
        key = f"random / {index}"
        while True:  # the draws are replayed identically on a rerun, so finished items are skipped exactly
            if drawn >= MAX_DRAWS:
                raise SystemExit(f"{space}: no random genotype within {OPS_BAND:.0%} of {target / 1e6:.2f} M")
            genotype = random_genotype(supernet, generator, f"random{index}")
            drawn += 1
            ops = profile(genotype).equiv_ops
            if abs(ops / target - 1) <= OPS_BAND:
                break
        if key in items:
            continue
        path = root / f"random{index}" / "random.bnn"
        dump(genotype, path)
        started = time.perf_counter()
        top1 = proxy_top1(path, path.parent / "proxy", args)
        items[key] = dict(
            arm="random", genotype=str(path), equiv_ops=ops, proxy_seconds=time.perf_counter() - started, top1=top1
        )
        save()
        print(f"{space} {key}: top-1 {100 * top1:.2f}% at {ops / 1e6:.2f} M Equiv. Ops", flush=True)
    results[f"{space} draws"] = drawn


def report(space: str, items: dict) -> str:
    lines = [f"## {space}", "", "| arm | n | test top-1 (mean +- std) | Equiv. Ops (M, mean) | ranks among random |"]
    lines.append("|---|---|---|---|---|")
    randoms = sorted((item["top1"] for item in items.values() if item["arm"] == "random"), reverse=True)
    for arm in [*ARMS, "random"]:
        members = [item for item in items.values() if item["arm"] == arm]
        if not members:
            continue
        accs = [100 * item["top1"] for item in members]
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ops = statistics.mean(item["equiv_ops"] for item in members) / 1e6
        ranks = "-"
        if arm != "random":
            ranks = ", ".join(f"{1 + sum(r > item['top1'] for r in randoms)}/{len(randoms) + 1}" for item in members)
        lines.append(f"| {arm} | {len(members)} | {statistics.mean(accs):.2f} +- {std:.2f} | {ops:.2f} | {ranks} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spaces", default="bnas,mbconv")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="cpu")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--random", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("-o", "--output", default="runs/search_vs_random")
    parser.add_argument("--op-norm", default="scale", help="bnas supernet: scale (default) or batchnorm (DARTS)")
    parser.add_argument("--reuse", metavar="DIR", help="take the searched genotypes of an earlier run in DIR")
    for name, value in PRESETS["cpu"].items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=None, help=f"(cpu preset: {value})")
    args = parser.parse_args()
    for name, value in PRESETS[args.preset].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["settings"] = {k: v for k, v in vars(args).items()}

    def save() -> None:
        results_path.write_text(json.dumps(results, indent=1))

    for space in args.spaces.split(","):
        run_space(space, args, results, save)
        print(report(space, results[space]), flush=True)
    text = "\n".join(report(space, results[space]) for space in args.spaces.split(","))
    (out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
