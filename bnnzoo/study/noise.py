"""``bnnzoo study noise``: the 2 x 2 design eps_A in {0, a} x eps_W in {0, w} x N seeds.

Each point is one search (sharpness logged every epoch, bnnzoo/search/sharpness.py) followed by a
short proxy training of its derived genotype on the search's dataset (test top-1 on the test split,
which the search never sees). The report compares the four arms on sharpness, stability,
op preferences and proxy accuracy, always as mean +- std over seeds, and says per claim of the paper
whether the data supports it, contradicts it or cannot decide (bnnzoo/study/claims.py).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from bnnzoo.dsl import parse, to_text
from bnnzoo.dsl.types import Genotype
from bnnzoo.search.config import SearchConfig
from bnnzoo.search.grid import ProxyConfig, proxy_score, summary
from bnnzoo.study.claims import finite, format_mean_std, mean_std
from bnnzoo.study.genotype_stats import CELL_STATS, genotype_stats, pairwise_distances, stable_epochs
from bnnzoo.study.layout import Point, StudyError
from bnnzoo.study.markdown import Claim, claims_section, points_done, table
from bnnzoo.study.plots import bars_figure, save_figure, trajectory_figure

ARMS = ("none", "eps_A", "eps_W", "both")
RUNTIME_FIELDS = ("output", "overwrite", "progress", "num_workers", "name", "eps_a", "eps_w", "seed", "sharpness")
TUPLE_FIELDS = ("widths", "depths", "strides", "kernels", "expansions")
FIGURES = {
    "sharpness": "sharpness.png",
    "stability": "stability.png",
    "ops": "op_preferences.png",
    "accuracy": "accuracy.png",
}
SHARPNESS_MEASURES = (
    ("sharpness_alpha", "dominant eigenvalue of the alpha Hessian"),
    ("sharpness_logits", "the same times T^2 (along alpha / T)"),
    ("sharpness_weights", "weight sharpness: loss rise at rho"),
    ("sharpness_val_loss", "validation loss on the subset"),
    ("alpha_entropy_normalized", "alpha entropy (1 = uniform)"),
)


@dataclass(frozen=True)
class NoiseStudy:
    """The design: a base search (its eps and seed are set per point), the noise levels, seeds and proxy."""

    search: SearchConfig
    eps_a: float = 0.2
    eps_w: float = 0.25
    seeds: int = 3
    proxy: ProxyConfig = field(default_factory=ProxyConfig)
    kind = "noise"

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise StudyError(f"--seeds must be at least 1, got {self.seeds}")
        if not (0 < self.eps_a <= 1 and 0 < self.eps_w <= 1):
            raise StudyError(f"--eps-a and --eps-w must be in (0, 1], got {self.eps_a} and {self.eps_w}")
        self.point_config(self.points()[-1], Path(".")).validate()

    def arm_eps(self, arm: str) -> tuple[float, float]:
        return (self.eps_a if arm in ("eps_A", "both") else 0.0, self.eps_w if arm in ("eps_W", "both") else 0.0)

    def settings(self) -> dict[str, Any]:
        search = {k: v for k, v in self.search.to_dict().items() if k not in RUNTIME_FIELDS}
        proxy = dataclasses.asdict(self.proxy)
        return {"search": search, "eps_a": self.eps_a, "eps_w": self.eps_w, "seeds": self.seeds, "proxy": proxy}

    def points(self) -> list[Point]:
        """Seed by seed, the four arms: a study cut short still has whole 2 x 2 blocks."""
        points = []
        for seed in range(self.seeds):
            for arm in ARMS:
                eps_a, eps_w = self.arm_eps(arm)
                params = {"arm": arm, "eps_a": eps_a, "eps_w": eps_w, "seed": seed}
                points.append(Point(len(points), f"{arm}_seed{seed}", params))
        return points

    def point_config(self, point: Point, folder: Path) -> SearchConfig:
        p = point.params
        return replace(
            self.search,
            eps_a=p["eps_a"],
            eps_w=p["eps_w"],
            seed=p["seed"],
            name=point.name,
            output=str(folder / "search"),
            sharpness=True,
            progress=False,
            overwrite=True,
        )

    def run_point(self, point: Point, folder: Path, echo) -> dict[str, Any]:
        from bnnzoo.profile import profile
        from bnnzoo.search.engine import CHECKPOINT, run_search

        config = self.point_config(point, folder)
        resume = (Path(config.output) / f"{CHECKPOINT}.json").exists()
        result = run_search(config, resume=resume, echo=echo)
        top1 = proxy_score(result.genotype_path, config, self.proxy, folder / "proxy")
        echo(f"proxy test top-1 {100 * top1:.2f}%")
        return {
            **point.params,
            "genotype": to_text(result.genotype),
            "genotype_file": str(result.genotype_path.relative_to(folder)),
            "equiv_ops": float(profile(result.genotype).equiv_ops),
            "proxy_top1": top1,
            "verdict": result.verdict,
            "history": result.history,
        }

    def report(self, results: dict[str, dict[str, Any]], root: Path, command: str | None) -> str:
        return NoiseReport(self, results, root).markdown(command)


def from_settings(settings: dict[str, Any]) -> NoiseStudy:
    search = dict(settings["search"])
    for name in TUPLE_FIELDS:
        if search.get(name) is not None:
            search[name] = tuple(search[name])
    return NoiseStudy(
        SearchConfig(**search),
        settings["eps_a"],
        settings["eps_w"],
        settings["seeds"],
        ProxyConfig(**settings["proxy"]),
    )


class NoiseReport:
    """The merged report of the points that are done."""

    def __init__(self, study: NoiseStudy, results: dict[str, dict[str, Any]], root: Path) -> None:
        self.study, self.root = study, root
        self.points = study.points()
        self.results = {p.name: results[p.name] for p in self.points if p.name in results}
        self.arms = {arm: [r for r in self.results.values() if r["arm"] == arm] for arm in ARMS}
        self.genotypes: dict[str, Genotype] = {name: parse(r["genotype"]) for name, r in self.results.items()}
        self.stats = {name: genotype_stats(g) for name, g in self.genotypes.items()}

    # -- per-point measures ----------------------------------------------------------------

    def values(self, arms: tuple[str, ...], measure) -> list[float]:
        """``measure(result)`` for every done point of ``arms``."""
        return [measure(r) for arm in arms for r in self.arms[arm]]

    def stat(self, key: str):
        return lambda r: self.stats[r["name"]].get(key, math.nan)

    @staticmethod
    def final(key: str):
        return lambda r: float(r["history"][-1].get(key, math.nan))

    def distances(self, arm: str) -> list[float]:
        return pairwise_distances([self.genotypes[r["name"]] for r in self.arms[arm]])

    # -- the report ------------------------------------------------------------------------

    def markdown(self, command: str | None) -> str:
        s = self.study
        c = s.search
        parts = [
            "# Noise study: bimodal perturbation, eps_A x eps_W x seeds\n",
            f"The 2 x 2 design eps_A in {{0, {s.eps_a:g}}} x eps_W in {{0, {s.eps_w:g}}}, {s.seeds} seed(s) per arm "
            f"(seeds 0..{s.seeds - 1}), in the {c.space} space on {c.dataset}. Every value is a mean ± std over the "
            "seeds of an arm; no best seed is picked.\n",
            f"Command: `{command}`\n" if command else "",
            points_done(self.points, set(self.results)),
            self._setup(),
        ]
        if not self.results:
            return "\n".join(parts)
        self._figures()
        parts += [
            self._sharpness(),
            self._stability(),
            self._preferences(),
            self._accuracy(),
            "## Claims\n",
            claims_section(self._claims()),
            self._per_point(),
        ]
        return "\n".join(parts)

    def _setup(self) -> str:
        c, p = self.study.search, self.study.proxy
        if c.space == "bnas":
            supernet = f"BNAS supernet, {c.layers} cells of {c.channels} initial channels"
        else:
            supernet = f"MBConv supernet, widths {list(c.widths)}, depths {list(c.depths)}, stem {c.stem_channels}"
        rows = [
            ["supernet", supernet],
            ["images", f"{c.limit or 'all'} training images split {c.train_portion:g} / {1 - c.train_portion:g}"],
            ["image size", c.image_size or 32],
            ["search", f"{c.epochs} epochs ({c.warmup} warm-up), batch {c.batch_size}, max steps {c.max_steps}"],
            ["temperature", f"{c.temperature:g} to {c.final_temperature}"],
            [
                "sharpness",
                f"{c.sharpness_images} validation images, rho {c.sharpness_rho:g}, {c.sharpness_draws} draws",
            ],
            [
                "proxy training",
                f"{max(p.epochs, 2)} epochs (two-step recipe), batch {p.batch_size}, Adam lr {p.lr:g}, "
                f"max steps {p.max_steps}, "
                f"{p.train_limit or 'all'} training / {p.test_limit or 'all'} test images",
            ],
        ]
        return "## Setup\n\n" + table(["setting", "value"], rows)

    def _figures(self) -> None:
        trajectories = [
            (title, {arm: [[row.get(key, math.nan) for row in r["history"]] for r in self.arms[arm]] for arm in ARMS})
            for key, title in SHARPNESS_MEASURES
        ]
        figure = trajectory_figure(trajectories, "sharpness and entropy per epoch, mean ± std over seeds")
        save_figure(figure, self.root / FIGURES["sharpness"])
        stability = [
            ("pairwise genotype distance", {arm: self.distances(arm) for arm in ARMS}),
            ("epochs stable before the end", {arm: self.values((arm,), _stable) for arm in ARMS}),
        ]
        save_figure(bars_figure(stability, "stability across seeds"), self.root / FIGURES["stability"])
        preferences = [
            (_STAT_TITLES[key], {arm: self.values((arm,), self.stat(key)) for arm in ARMS}) for key in self._stat_keys()
        ]
        save_figure(bars_figure(preferences, "op preferences of the derived genotypes"), self.root / FIGURES["ops"])
        accuracy = [("proxy test top-1 (%)", {arm: [100 * v for v in self.values((arm,), _top1)] for arm in ARMS})]
        save_figure(bars_figure(accuracy, "proxy-trained accuracy"), self.root / FIGURES["accuracy"])

    def _stat_keys(self) -> list[str]:
        if self.study.search.space == "bnas":
            return [f"{kind}.{key}" for kind in ("normal", "reduction") for key in CELL_STATS]
        return ["layers.blocks", "layers.k3_share", "layers.late_expansion", "layers.late_channels"]

    def _arm_rows(self, measures) -> list[list[str]]:
        rows = []
        for arm in ARMS:
            eps_a, eps_w = self.study.arm_eps(arm)
            cells = [
                format_mean_std(self.values((arm,), measure), scale, digits) for measure, scale, digits in measures
            ]
            rows.append([f"{arm} ({eps_a:g}, {eps_w:g})", len(self.arms[arm]), *cells])
        return rows

    def _sharpness(self) -> str:
        measures = [
            (self.final("sharpness_alpha"), 1, 4),
            (self.final("sharpness_logits"), 1, 4),
            (self.final("sharpness_weights"), 1, 4),
            (_search_mean("sharpness_alpha"), 1, 4),
            (_search_mean("sharpness_weights"), 1, 4),
        ]
        header = ["arm (eps_A, eps_W)", "seeds", "λ_max final", "T²·λ_max final", "weight rise final"]
        header += ["λ_max mean (search epochs)", "weight rise mean (search epochs)"]
        finals = [r["history"][-1]["sharpness_alpha"] for r in self.results.values()]
        negatives = sum(v < 0 for v in finals)
        search_seconds = [r["history"][-1]["seconds"] / len(r["history"]) for r in self.results.values()]
        sharp_seconds = [row["sharpness_seconds"] for r in self.results.values() for row in r["history"]]
        (ms, ss, _), (mh, sh, _) = mean_std(search_seconds), mean_std(sharp_seconds)
        c = self.study.search
        return (
            f"## Sharpness\n\n![sharpness trajectories]({FIGURES['sharpness']})\n\n"
            "λ_max is the dominant eigenvalue of the Hessian of the validation loss with respect to alpha (power "
            f"iteration on Hessian-vector products); with the mixing weights softmax(alpha / T) it carries 1/T², so "
            "T²·λ_max (along alpha / T) is shown too, as the temperature anneals. The weight rise is the mean increase "
            f"of the validation loss when every binary latent weight channel moves by a random direction of relative "
            f"radius {c.sharpness_rho:g} ({c.sharpness_draws} draws). Both on the same {c.sharpness_images} validation "
            "images at every epoch.\n\n"
            + table(header, self._arm_rows(measures))
            + f"\n{negatives} of {len(finals)} final λ_max are negative (the dominant eigenvalue is the largest in "
            "magnitude).\n\n"
            f"Cost: {mh:.1f} ± {sh:.1f} s of sharpness per epoch against {ms:.1f} ± {ss:.1f} s of search steps per "
            f"epoch ({100 * mh / ms:.0f} %), on this run's machine.\n"
        )

    def _stability(self) -> str:
        rows = []
        for arm in ARMS:
            eps_a, eps_w = self.study.arm_eps(arm)
            distances = self.distances(arm)
            decided = sum(r["history"][-1]["alpha_entropy_normalized"] <= 0.5 for r in self.arms[arm])
            rows.append(
                [
                    f"{arm} ({eps_a:g}, {eps_w:g})",
                    len(self.arms[arm]),
                    f"{format_mean_std(distances, 1, 3)} ({len(distances)} pairs)",
                    format_mean_std(self.values((arm,), _stable), 1, 1),
                    format_mean_std(self.values((arm,), self.final("alpha_entropy_normalized")), 1, 3),
                    f"{decided} of {len(self.arms[arm])}",
                ]
            )
        header = ["arm", "seeds", "pairwise genotype distance", "epochs stable before the end", "final entropy"]
        return (
            f"## Stability\n\n![stability]({FIGURES['stability']})\n\n"
            "Genotype distance: the share of differing decisions between two seeds' genotypes (per cell node, its "
            "edges' inputs and ops; per MBConv layer, its block), 0 = identical, 1 = nothing shared. "
            "Epochs stable: how many epochs before the end the derived genotype last changed "
            "(`genotype_changed` in search_log.jsonl). "
            "Decided: final mean normalised alpha entropy <= 0.5.\n\n" + table([*header, "decided"], rows)
        )

    def _preferences(self) -> str:
        keys = self._stat_keys()
        measures = [(self.stat(key), 1, 2) for key in keys]
        text = f"## Op preferences\n\n![op preferences]({FIGURES['ops']})\n\n" + table(
            ["arm", "seeds", *(_STAT_TITLES[k] for k in keys)], self._arm_rows(measures)
        )
        if self.study.search.space == "bnas":
            text += (
                "\nops: edges whose op is not none; pool share = pools / (pools + convolutions); "
                "k3 share: convolutions with a 3x3 kernel (bin_conv_3x3, bin_dil_conv_3x3) among all convolutions.\n"
            )
        else:
            text += (
                "\nblocks: MB layers (not skip); k3 share among MB layers; late layers: the MB layers from the last "
                "stride-2 layer on, their expansion e and expanded channels e x C_in (the stage widths are fixed by "
                "the supernet, so a wider late layer is a larger e).\n"
            )
        return text

    def _accuracy(self) -> str:
        rows = []
        for arm in ARMS:
            eps_a, eps_w = self.study.arm_eps(arm)
            seeds = ", ".join(f"{100 * r['proxy_top1']:.2f}" for r in sorted(self.arms[arm], key=lambda r: r["seed"]))
            rows.append(
                [
                    f"{arm} ({eps_a:g}, {eps_w:g})",
                    len(self.arms[arm]),
                    format_mean_std(self.values((arm,), _top1), 100, 2),
                    seeds,
                    format_mean_std(self.values((arm,), lambda r: r["equiv_ops"]), 1e-6, 3),
                ]
            )
        return (
            f"## Proxy-trained accuracy\n\n![accuracy]({FIGURES['accuracy']})\n\n"
            "Each derived genotype trained with the proxy recipe of the setup; test top-1 on the test split.\n\n"
            + table(["arm", "seeds", "test top-1 (%)", "per seed (%)", "Equiv. Ops (M)"], rows)
        )

    def _claims(self) -> list[Claim]:
        none, both = ("none",), ("both",)
        with_a, without_a = ("eps_A", "both"), ("none", "eps_W")
        with_w, without_w = ("eps_W", "both"), ("none", "eps_A")
        abstract = "abstract"
        main_a, main_w = "eps_A > 0 (eps_A, both)", "eps_W > 0 (eps_W, both)"
        no_a, no_w = "eps_A = 0 (none, eps_W)", "eps_W = 0 (none, eps_A)"

        def claim(text, source, measure, treated, control, values, expected, digits=3, note="") -> Claim:
            t_arms, t_label = treated
            c_arms, c_label = control
            return Claim(
                text,
                source,
                measure,
                t_label,
                c_label,
                self.values(t_arms, values),
                self.values(c_arms, values),
                expected,
                digits,
                note,
            )

        claims = [
            claim(
                "bimodal perturbation lowers the sharpness along alpha",
                abstract,
                "final λ_max",
                (both, "both"),
                (none, "none"),
                self.final("sharpness_alpha"),
                "lower",
                4,
            ),
            claim(
                "bimodal perturbation lowers the sharpness along the weights",
                abstract,
                "final weight rise",
                (both, "both"),
                (none, "none"),
                self.final("sharpness_weights"),
                "lower",
                4,
            ),
            claim(
                "noise on alpha lowers the sharpness along alpha",
                abstract,
                "final λ_max",
                (with_a, main_a),
                (without_a, no_a),
                self.final("sharpness_alpha"),
                "lower",
                4,
            ),
            claim(
                "noise on the weights lowers the sharpness along the weights",
                abstract,
                "final weight rise",
                (with_w, main_w),
                (without_w, no_w),
                self.final("sharpness_weights"),
                "lower",
                4,
            ),
            Claim(
                "bimodal perturbation makes seeds agree more (stability)",
                abstract,
                "pairwise genotype distance",
                "both",
                "none",
                self.distances("both"),
                self.distances("none"),
                "lower",
                3,
                "pairs share seeds, so this is lenient",
            ),
            claim(
                "bimodal perturbation makes the derived genotype settle earlier (stability)",
                abstract,
                "epochs stable before the end",
                (both, "both"),
                (none, "none"),
                _stable,
                "higher",
                2,
            ),
        ]
        if self.study.search.space == "bnas":
            claims += [
                claim(
                    "noise on alpha makes normal cells prefer pooling",
                    "supp. Sec. 3",
                    "normal-cell pool share",
                    (with_a, main_a),
                    (without_a, no_a),
                    self.stat("normal.pool_share"),
                    "higher",
                ),
                claim(
                    "noise on alpha makes reduction cells prefer convolutions",
                    "supp. Sec. 3",
                    "reduction-cell conv share",
                    (with_a, main_a),
                    (without_a, no_a),
                    self.stat("reduction.conv_share"),
                    "higher",
                ),
                claim(
                    "noise on the weights reduces the ops per cell",
                    "supp. Sec. 3",
                    "non-none ops per cell",
                    (with_w, main_w),
                    (without_w, no_w),
                    self.stat("cells.ops"),
                    "lower",
                    2,
                ),
                claim(
                    "noise on the weights prefers 3x3 kernels",
                    "supp. Sec. 3",
                    "3x3 share of convolutions",
                    (with_w, main_w),
                    (without_w, no_w),
                    self.stat("cells.k3_share"),
                    "higher",
                ),
            ]
        else:
            claims += [
                claim(
                    "noise on the weights prefers smaller kernels (k = 3)",
                    "supp. Sec. 4",
                    "k3 share of MB layers",
                    (with_w, main_w),
                    (without_w, no_w),
                    self.stat("layers.k3_share"),
                    "higher",
                ),
                claim(
                    "noise on the weights makes late layers wider",
                    "supp. Sec. 4",
                    "late expanded channels",
                    (with_w, main_w),
                    (without_w, no_w),
                    self.stat("layers.late_channels"),
                    "higher",
                    1,
                ),
            ]
        claims.append(
            claim(
                "bimodal perturbation finds genotypes that train to a higher accuracy",
                "Table 3",
                "proxy test top-1 (%)",
                (both, "both"),
                (none, "none"),
                lambda r: 100 * _top1(r),
                "higher",
                2,
            )
        )
        return claims

    def _per_point(self) -> str:
        rows = []
        for point in self.points:
            r = self.results.get(point.name)
            if r is None:
                continue
            last = r["history"][-1]
            rows.append(
                [
                    point.name,
                    f"{100 * r['proxy_top1']:.2f}",
                    f"{r['equiv_ops'] / 1e6:.3f}",
                    _stable(r),
                    f"{last['alpha_entropy_normalized']:.3f}",
                    f"{last['sharpness_alpha']:.4g}",
                    f"{last['sharpness_weights']:.4g}",
                    f"`{summary(self.genotypes[point.name])}`",
                ]
            )
        header = ["point", "top-1 (%)", "Equiv. Ops (M)", "stable", "entropy", "λ_max", "weight rise", "genotype"]
        return "## Per point\n\n" + table(header, rows)


_STAT_TITLES = {
    **{
        f"{kind}.{key}": f"{kind} {key.replace('_', ' ')}"
        for kind in ("normal", "reduction", "cells")
        for key in CELL_STATS
    },
    "layers.blocks": "MB blocks (not skip)",
    "layers.k3_share": "k3 share",
    "layers.late_expansion": "late expansion e",
    "layers.late_channels": "late expanded channels",
}


def _top1(result: dict[str, Any]) -> float:
    return float(result["proxy_top1"])


def _stable(result: dict[str, Any]) -> int:
    return stable_epochs(result["history"])


def _search_mean(key: str):
    """The mean of ``key`` over a point's search epochs (not the warm-up)."""
    return lambda r: mean_std(finite([row[key] for row in r["history"] if row["phase"] == "search" and key in row]))[0]
