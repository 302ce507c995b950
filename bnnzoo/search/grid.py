"""Grid search over the noise scales: search at every (eps_A, eps_W), score each genotype by a
short proxy training, write a results table and keep the best genotype.

The supplement (Sec. 2) does the same on CIFAR and restricts the grid because large noise stops
the search from converging.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

from bnnzoo._atomic import atomic_write_text
from bnnzoo.dsl import dump, layer_text
from bnnzoo.dsl.types import Genotype, LayerList
from bnnzoo.profile import profile
from bnnzoo.search.config import SearchConfig
from bnnzoo.search.engine import run_search


@dataclass(frozen=True)
class ProxyConfig:
    """The short training that scores a searched genotype."""

    epochs: int = 2
    max_steps: int | None = None
    batch_size: int = 64
    train_limit: int | None = None
    test_limit: int | None = None
    lr: float = 1e-3  # Adam's rate (the recipe's default); short proxies train faster with a larger one


@dataclass
class GridPoint:
    eps_a: float
    eps_w: float
    genotype: Genotype
    genotype_path: Path
    equiv_ops: float
    proxy_top1: float


def proxy_score(genotype_path: Path, config: SearchConfig, proxy: ProxyConfig, output: Path) -> float:
    """Test top-1 of the genotype after a short two-step training on the search's dataset."""
    from bnnzoo.train.config import TrainConfig
    from bnnzoo.train.recipe import train

    result = train(
        TrainConfig(
            model=str(genotype_path),
            dataset=config.dataset,
            data_root=config.data_root,
            epochs=max(proxy.epochs, 2),
            batch_size=proxy.batch_size,
            lr=proxy.lr,
            max_steps_per_epoch=proxy.max_steps,
            train_limit=proxy.train_limit,
            test_limit=proxy.test_limit,
            seed=config.seed,
            device=config.device,
            output_dir=str(output),
            overwrite=True,
            progress=False,
        )
    )
    return result.test_top1


def grid_search(
    config: SearchConfig, eps_a_values: list[float], eps_w_values: list[float], proxy: ProxyConfig
) -> tuple[list[GridPoint], GridPoint]:
    """Search every point of the grid; return all points and the best by proxy accuracy."""
    root = Path(config.output)
    points = []
    for eps_a, eps_w in itertools.product(eps_a_values, eps_w_values):
        folder = root / f"eps_a={eps_a:g}_eps_w={eps_w:g}"
        point_config = replace(config, eps_a=eps_a, eps_w=eps_w, output=str(folder))
        result = run_search(point_config)
        top1 = proxy_score(result.genotype_path, point_config, proxy, folder / "proxy")
        ops = profile(result.genotype).equiv_ops
        points.append(GridPoint(eps_a, eps_w, result.genotype, result.genotype_path, ops, top1))
    best = max(points, key=lambda p: p.proxy_top1)
    dump(best.genotype, root / f"{config.name}.bnn")
    atomic_write_text(root / "grid_results.csv", results_csv(points))
    atomic_write_text(root / "grid_results.md", results_table(points, best))
    return points, best


def summary(genotype: Genotype) -> str:
    """A one-line description of a genotype's body for the results table."""
    body = genotype.body
    if isinstance(body, LayerList):
        return "; ".join(layer_text(layer) for layer in body.layers)
    cells = []
    for cell in (body.normal, body.reduction):
        edges = ", ".join(f"{e.op}({e.input})" for node in cell.nodes for e in node.edges)
        cells.append(f"{cell.kind}: {edges}")
    return " | ".join(cells)


def results_csv(points: list[GridPoint]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["eps_a", "eps_w", "proxy_top1", "equiv_ops", "genotype_file", "genotype"])
    for p in points:
        writer.writerow(
            [p.eps_a, p.eps_w, f"{p.proxy_top1:.4f}", f"{p.equiv_ops:.0f}", p.genotype_path, summary(p.genotype)]
        )
    return out.getvalue()


def results_table(points: list[GridPoint], best: GridPoint) -> str:
    lines = [
        "| eps_A | eps_W | proxy top-1 | Equiv. Ops (M) | genotype |",
        "|---|---|---|---|---|",
    ]
    for p in points:
        mark = " (best)" if p is best else ""
        lines.append(
            f"| {p.eps_a:g} | {p.eps_w:g} | {p.proxy_top1 * 100:.2f}%{mark} | {p.equiv_ops / 1e6:.2f} | "
            f"{summary(p.genotype)} |"
        )
    return "\n".join(lines) + "\n"
