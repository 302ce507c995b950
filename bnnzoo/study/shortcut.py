"""``bnnzoo study shortcut``: the supplement's Table 1 ablation of the reduction block's shortcut.

The same MBConv genotypes (R1, R2, ...; by default the zoo's reconstructions MBConv-A, -B, -C, scaled
to a small width for a proxy budget) are trained with each fill-up of the AvgPool shortcut
(``zero``, ``partial_duplicate``, ``global_average``; bnnzoo/build/shortcuts.py) with one recipe,
seed by seed. The report sets mean +- std test top-1 beside the paper's Table 1, whose numbers are
the paper's claims on CIFAR-100 with its full-size models, not measurements of ours.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bnnzoo.dsl import check_genotype, dump, to_text
from bnnzoo.dsl.library import resolve_genotype
from bnnzoo.dsl.types import Genotype, LayerList, MBConv
from bnnzoo.search.config import SearchConfig
from bnnzoo.search.grid import ProxyConfig, proxy_score
from bnnzoo.study.claims import format_mean_std
from bnnzoo.study.layout import Point, StudyError
from bnnzoo.study.markdown import Claim, claims_section, points_done, table
from bnnzoo.study.plots import bars_figure, save_figure

SHORTCUTS = ("zero", "partial_duplicate", "global_average")  # Table 1's column order: Z, PD, GA
SHORT_NAMES = {"zero": "Z", "partial_duplicate": "PD", "global_average": "GA"}
DEFAULT_MODELS = ("mbconv_a", "mbconv_b", "mbconv_c")
FIGURE = "shortcut.png"
# The supplement's Table 1 (CIFAR-100, the paper's own R1-R3): Equiv. Ops (M), then test top-1 (%) for Z, PD, GA.
PAPER_TABLE1 = {
    "R1": (9.86, 71.62, 72.12, 71.65),
    "R2": (12.49, 73.20, 73.83, 73.67),
    "R3": (13.00, 73.49, 73.89, 73.75),
}


def even_channels(channels: int, multiplier: float) -> int:
    """``channels * multiplier`` rounded to an even number, at least 2 (the g = 2 group conv needs even widths)."""
    return max(2, 2 * round(channels * multiplier / 2))


def scaled_genotype(
    genotype: Genotype, multiplier: float, label: str, in_chans: int, image_size: int | None
) -> Genotype:
    """An MBConv genotype with every width scaled by ``multiplier`` (:func:`even_channels`), named ``label``.

    The published-figure metadata is dropped (it describes the full-size model); the source and
    scale are recorded instead.
    """
    if not isinstance(genotype.body, LayerList) or genotype.space != "mbconv":
        raise StudyError(f"{genotype.name} is a {genotype.space} genotype; the shortcut study needs mbconv genotypes")
    layers = tuple(
        replace(layer, channels=even_channels(layer.channels, multiplier)) if isinstance(layer, MBConv) else layer
        for layer in genotype.body.layers
    )
    size = image_size or genotype.input_shape[1]
    meta = tuple((k, v) for k, v in genotype.meta if not k.startswith("published."))
    meta += (("study.scaled_from", genotype.name), ("study.width_multiplier", f"{multiplier:g}"))
    comments = (f"{label} of `bnnzoo study shortcut`: {genotype.name} with its widths scaled by {multiplier:g}.",)
    if dict(genotype.meta).get("reconstruction") == "true":
        comments += (f"{genotype.name} is a reconstruction fitted to published op counts, not the paper's genotype.",)
    scaled = replace(
        genotype,
        name=label,
        input_shape=(in_chans, size, size),
        stem=replace(genotype.stem, channels=even_channels(genotype.stem.channels, multiplier)),
        body=replace(genotype.body, layers=layers),
        meta=meta,
        comments=comments,
    )
    return check_genotype(scaled)


@dataclass(frozen=True)
class ShortcutStudy:
    """The design: models (zoo names or .bnn paths) x shortcut kinds x seeds, one training recipe."""

    models: tuple[str, ...] = DEFAULT_MODELS
    width_multiplier: float = 0.25
    image_size: int | None = None
    seeds: int = 3
    dataset: str = "fashion_mnist"
    data_root: str | None = None
    device: str = "cpu"
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    kind = "shortcut"

    def __post_init__(self) -> None:
        if self.seeds < 1 or not self.models:
            raise StudyError(
                f"the shortcut study needs at least one model and one seed, got {self.models} / {self.seeds}"
            )
        if not 0 < self.width_multiplier <= 4:
            raise StudyError(f"--width-multiplier must be in (0, 4], got {self.width_multiplier}")
        self.genotypes()  # every model resolves and scales

    def labels(self) -> list[str]:
        return [f"R{index + 1}" for index in range(len(self.models))]

    def genotypes(self) -> dict[str, Genotype]:
        """R1, R2, ...: each model scaled (its shortcut is set per point)."""
        from bnnzoo.train.data import dataset_info

        in_chans = dataset_info(self.dataset).input_shape[0]
        return {
            label: scaled_genotype(resolve_genotype(model), self.width_multiplier, label, in_chans, self.image_size)
            for label, model in zip(self.labels(), self.models)
        }

    def settings(self) -> dict[str, Any]:
        settings = dataclasses.asdict(self)
        settings["proxy"] = dataclasses.asdict(self.proxy)
        return settings

    def points(self) -> list[Point]:
        """Seed by seed, model by model, the three shortcuts."""
        points = []
        for seed in range(self.seeds):
            for label, model in zip(self.labels(), self.models):
                for kind in SHORTCUTS:
                    params = {"label": label, "model": model, "shortcut": kind, "seed": seed}
                    points.append(Point(len(points), f"{label}_{kind}_seed{seed}", params))
        return points

    def run_point(self, point: Point, folder: Path, echo) -> dict[str, Any]:
        from bnnzoo.profile import profile

        p = point.params
        genotype = replace(self.genotypes()[p["label"]], shortcut=p["shortcut"], name=f"{p['label']}_{p['shortcut']}")
        path = folder / "model.bnn"
        dump(genotype, path)
        # proxy_score reads the dataset, data root, seed and device of a search config
        where = SearchConfig(dataset=self.dataset, data_root=self.data_root, seed=p["seed"], device=self.device)
        top1 = proxy_score(path, where, self.proxy, folder / "train")
        echo(f"test top-1 {100 * top1:.2f}%")
        return {**p, "top1": top1, "equiv_ops": float(profile(genotype).equiv_ops), "genotype": to_text(genotype)}

    def report(self, results: dict[str, dict[str, Any]], root: Path, command: str | None) -> str:
        return shortcut_report(self, results, root, command)


def from_settings(settings: dict[str, Any]) -> ShortcutStudy:
    settings = dict(settings)
    settings["models"] = tuple(settings["models"])
    settings["proxy"] = ProxyConfig(**settings["proxy"])
    return ShortcutStudy(**settings)


def shortcut_report(study: ShortcutStudy, results: dict[str, dict[str, Any]], root: Path, command: str | None) -> str:
    from bnnzoo.profile import profile

    points = study.points()
    done = {p.name: results[p.name] for p in points if p.name in results}
    labels = study.labels()

    def top1(label: str, kind: str) -> list[float]:
        return [r["top1"] for r in done.values() if r["label"] == label and r["shortcut"] == kind]

    p = study.proxy
    genotypes = study.genotypes()
    parts = [
        "# Shortcut study: the reduction block's shortcut (supplement, Table 1)\n",
        f"The same MBConv genotypes trained with the zero (Z), partially duplicate (PD) and global average (GA) "
        f"fill-up of the reduction shortcut, {study.seeds} seed(s) each, on {study.dataset}, with one recipe: "
        f"{max(p.epochs, 2)} epochs (two-step), batch {p.batch_size}, Adam lr {p.lr:g}, max steps {p.max_steps}, "
        f"{p.train_limit or 'all'} training / {p.test_limit or 'all'} test images. Mean ± std over seeds.\n",
        f"Command: `{command}`\n" if command else "",
        points_done(points, set(done)),
        "## Models\n",
        table(
            ["model", "from", "width multiplier", "input", "Equiv. Ops (M)", "binary / real params"],
            [
                [
                    label,
                    model,
                    f"{study.width_multiplier:g}",
                    "x".join(map(str, genotypes[label].input_shape)),
                    f"{profile(genotypes[label]).equiv_ops / 1e6:.3f}",
                    f"{profile(genotypes[label]).binary_params:,} / {profile(genotypes[label]).real_params:,}",
                ]
                for label, model in zip(labels, study.models)
            ],
        ),
        "The zoo's MBConv-A..D are reconstructions fitted to the paper's published op counts, not the paper's "
        "genotypes; the paper's R1-R3 are three random models of its search space, not these.\n",
    ]
    if not done:
        return "\n".join(parts)
    panels = [
        (label, {SHORT_NAMES[kind]: [100 * v for v in top1(label, kind)] for kind in SHORTCUTS}) for label in labels
    ]
    save_figure(bars_figure(panels, "test top-1 (%) by reduction shortcut", columns=3), root / FIGURE)
    rows = []
    for label in labels:
        paper = PAPER_TABLE1.get(label)
        ours = [format_mean_std(top1(label, kind), 100, 2) for kind in SHORTCUTS]
        claimed = [f"{v:.2f}" for v in paper[1:]] if paper else ["-"] * 3
        rows.append([label, *ours, f"{paper[0]:.2f}" if paper else "-", *claimed])
    header = ["model", "Z (ours)", "PD (ours)", "GA (ours)", "paper Equiv. Ops (M)", "paper Z", "paper PD", "paper GA"]
    parts += [
        "## Test top-1 (%)\n",
        f"![test top-1 by shortcut]({FIGURE})\n",
        table(header, rows),
        "The 'paper' columns are the paper's claims (supplement Table 1: CIFAR-100, the paper's own R1-R3 at full "
        "size and full training); they are not comparable in absolute value to ours, only in their ordering.\n",
        "## Claims\n",
        claims_section(_claims(study, done, top1)),
        "## Per point\n",
        table(
            ["point", "test top-1 (%)", "Equiv. Ops (M)"],
            [[name, f"{100 * r['top1']:.2f}", f"{r['equiv_ops'] / 1e6:.3f}"] for name, r in done.items()],
        ),
    ]
    return "\n".join(parts)


def _claims(study: ShortcutStudy, done: dict[str, dict[str, Any]], top1) -> list[Claim]:
    claims = []
    for other in ("zero", "global_average"):
        for label in study.labels():
            claims.append(
                Claim(
                    f"PD beats {SHORT_NAMES[other]} on {label}",
                    "supp. Table 1",
                    "test top-1 (%)",
                    "PD",
                    SHORT_NAMES[other],
                    [100 * v for v in top1(label, "partial_duplicate")],
                    [100 * v for v in top1(label, other)],
                    "higher",
                    2,
                )
            )
        differences = [100 * d for d in _paired(done, other)]
        claims.append(
            Claim(
                f"PD beats {SHORT_NAMES[other]} over all models (paired by model and seed)",
                "supp. Table 1",
                "test top-1 difference (points)",
                f"PD - {SHORT_NAMES[other]}",
                "0",
                differences,
                [0.0] * len(differences),
                "higher",
                2,
                f"{format_mean_std(differences, 1, 2)} points over {len(differences)} pairs",
            )
        )
    return claims


def _paired(done: dict[str, dict[str, Any]], other: str) -> list[float]:
    """PD minus ``other`` for every (model, seed) with both done: a one-sample comparison against 0."""
    by_key = {(r["label"], r["seed"], r["shortcut"]): r["top1"] for r in done.values()}
    return [
        value - by_key[(label, seed, other)]
        for (label, seed, kind), value in by_key.items()
        if kind == "partial_duplicate" and (label, seed, other) in by_key
    ]
