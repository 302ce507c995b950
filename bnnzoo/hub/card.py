"""The model card (``README.md``) of a staged Hub repository: YAML front matter and a body."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCardData

from bnnzoo.dsl.types import Genotype

__all__ = ["BIBTEX", "TAGS", "Measurement", "measurements", "model_card", "top1_of", "top5_of"]

TAGS = ["bnnzoo", "binary-neural-network", "image-classification", "timm"]
PAPER_TITLE = "Searching for Robust Binary Neural Networks via Bimodal Parameter Perturbation"
PAPER_DOI = "10.1109/WACV56688.2023.00244"
BIBTEX = """@inproceedings{ahn2023searching,
  title     = {Searching for Robust Binary Neural Networks via Bimodal Parameter Perturbation},
  author    = {Ahn, Daehyun and Kim, Hyungjun and Kim, Taesu and Park, Eunhyeok and Kim, Jae-Joon},
  booktitle = {Proceedings of the IEEE/CVF Winter Conference on Applications of Computer Vision (WACV)},
  pages     = {2409--2418},
  year      = {2023},
  doi       = {10.1109/WACV56688.2023.00244}
}"""

# Where a top-1 accuracy (in percent) may sit in a metrics dict, best first.
_TOP1_KEYS = ("top1", "acc1", "top1_accuracy", "accuracy", "test_top1", "val_top1", "eval_top1", "best_top1")
_TOP5_KEYS = ("top5", "acc5", "test_top5", "val_top5", "eval_top5")
_NESTED = ("test", "eval", "val", "validation", "best", "final")


def _fraction(value: Any) -> float | None:
    """An accuracy as a fraction: bnnzoo writes fractions in [0, 1]; a value above 1 is a percentage."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 100:
        return float(value) / 100 if value > 1 else float(value)
    return None


def _lookup(metrics: Mapping[str, Any] | None, keys: tuple[str, ...]) -> float | None:
    if not metrics:
        return None
    for key in keys:
        value = _fraction(metrics.get(key))
        if value is not None:
            return value
    for key in _NESTED:
        nested = metrics.get(key)
        if isinstance(nested, Mapping):
            found = _lookup(nested, keys)
            if found is not None:
                return found
    return None


def top1_of(metrics: Mapping[str, Any] | None) -> float | None:
    """The top-1 accuracy in a metrics dict (``top1``, ``acc1``, ``accuracy``, ``test_top1`` ...) as a fraction.

    bnnzoo's trainer and evaluator write accuracies as fractions in [0, 1]; a value above 1 is read as
    a percentage. Dicts under ``test``, ``eval``, ``val``, ``best`` or ``final`` are searched too.
    """
    return _lookup(metrics, _TOP1_KEYS)


def top5_of(metrics: Mapping[str, Any] | None) -> float | None:
    """Like :func:`top1_of`, for ``top5``, ``acc5`` or ``test_top5``."""
    return _lookup(metrics, _TOP5_KEYS)


def _percent(fraction: float) -> float:
    return round(fraction * 100, 2)


def _front_matter(title: str, license: str, dataset: str | None, measured: Measurement | None) -> str:
    """The card's YAML header, written by huggingface_hub (``ModelCardData`` with ``EvalResult``s).

    model-index values are in percent, as the Hub shows them; top-1 and top-5 come from one
    measurement. The Hub's model-index needs a dataset, so an accuracy on an unnamed dataset is in
    the body only."""
    results: list[EvalResult] = []
    if measured is not None and dataset:
        task = {"task_type": "image-classification", "task_name": "Image Classification"}
        where = {"dataset_type": dataset, "dataset_name": dataset, "dataset_split": measured.split or None}
        results.append(
            EvalResult(
                **task,
                **where,
                metric_type="accuracy",
                metric_value=_percent(measured.top1),
                metric_name="Top-1 accuracy",
            )
        )
        if measured.top5 is not None:
            results.append(
                EvalResult(
                    **task,
                    **where,
                    metric_type="top_5_accuracy",
                    metric_value=_percent(measured.top5),
                    metric_name="Top-5 accuracy",
                )
            )
    data = ModelCardData(
        library_name="timm",
        license=license,
        pipeline_tag="image-classification",
        tags=list(TAGS),
        datasets=[dataset] if dataset else None,
        metrics=["accuracy"] if measured is not None else None,
        model_name=title if results else None,
        eval_results=results or None,
    )
    return "---\n" + data.to_yaml() + "\n---\n"


def _shape(info: Mapping[str, Any]) -> str:
    return "x".join(map(str, info["input_size"]))


def _op_table(info: Mapping[str, Any], paper_info: Mapping[str, Any] | None = None) -> list[str]:
    """This model's counts and, at the paper's input shape, the published row and the difference."""

    def number(value: float, digits: int) -> str:
        # Tiny models would print 0.000: keep three significant digits below the table's precision.
        return f"{value:.{digits}f}" if value == 0 or abs(value) >= 10 ** (1 - digits) else f"{value:.3g}"

    def row(label: str, figures: Mapping[str, Any]) -> str:
        params = figures.get("params_mb")
        params_text = number(params, 3) if params is not None else "n/a"
        return (
            f"| {label} | {number(figures['bops'] / 1e9, 3)} | {number(figures['flops'] / 1e6, 2)} | "
            f"{number(figures['equiv_ops'] / 1e6, 2)} | {params_text} |"
        )

    lines = [
        "| | BOPs (G) | FLOPs (M) | Equiv. Ops (M) | Params (MB) |",
        "|---|---:|---:|---:|---:|",
        row(f"this model ({_shape(info)} input)", info["ours"]),
    ]
    compared = paper_info or info
    if paper_info is not None:
        lines.append(row(f"this genotype at the paper's {_shape(paper_info)} input", paper_info["ours"]))
    published = compared.get("published")
    if published:
        lines.append(row(f"published ({published['model']}, paper's Table 3)", published))
        errors = compared.get("relative_error") or {}
        cells = [f"{errors[key] * 100:+.1f}%" if key in errors else "-" for key in ("bops", "flops", "equiv_ops")]
        params_cell = f"{errors['params_mb'] * 100:+.1f}%" if "params_mb" in errors else "-"
        lines.append(f"| difference | {' | '.join(cells)} | {params_cell} |")
    return lines


def _comparison_note(info: Mapping[str, Any], paper_info: Mapping[str, Any] | str | None) -> list[str]:
    if isinstance(paper_info, str):
        return ["", paper_info]
    if paper_info is None or not paper_info.get("published"):
        return []
    names = {"bops": "BOPs", "flops": "FLOPs", "equiv_ops": "Equiv. Ops", "params_mb": "Params"}
    own, paper = info["ours"], paper_info["ours"]
    changed = [label for key, label in names.items() if own.get(key) != paper.get(key)]
    which = ", ".join(changed[:-1]) + f" and {changed[-1]}" if len(changed) > 1 else "".join(changed) or "none"
    return [
        "",
        f"The paper counts its models at {_shape(paper_info)} input; this model takes {_shape(info)} images "
        f"(figures that differ from the genotype's at the paper's input: {which}). The difference row compares "
        f"the same genotype at the paper's {_shape(paper_info)} input.",
    ]


@dataclass(frozen=True)
class Measurement:
    """One measured accuracy: by what, on which split and how many of its images."""

    what: str
    top1: float
    top5: float | None
    split: str | None
    images: int | None


# Where bnnzoo's tools leave a measured accuracy in a metrics dict: (key prefix, what measured it,
# the split). ``top1``/``top5``/``samples``/``split`` come from `bnnzoo eval --json`; the ``test_``
# keys from a training run's last test pass (``test_samples`` fewer than the split with --test-limit).
_MEASURED = (
    ("", "bnnzoo eval, after training", "test"),
    ("test_", "the training run's last test pass", "test"),
    ("val_", "the training run's validation pass", "validation"),
)


def measurements(metrics: Mapping[str, Any] | None) -> list[Measurement]:
    """The accuracies in ``metrics``, best documented first, each with its split and image count
    (None where the metrics do not record it)."""
    metrics = metrics or {}
    found = []
    for prefix, what, split in _MEASURED:
        top1 = _fraction(metrics.get(prefix + "top1"))
        if top1 is None:
            continue
        images = metrics.get(prefix + "samples")
        images = images if isinstance(images, int) and not isinstance(images, bool) else None
        top5 = _fraction(metrics.get(prefix + "top5"))
        found.append(Measurement(what, top1, top5, str(metrics.get(prefix + "split", split)), images))
    top1 = top1_of(metrics)
    if not found and top1 is not None:  # another tool's keys: what it was measured on is unknown
        found.append(Measurement("recorded with the weights", top1, top5_of(metrics), None, None))
    return found


def _images_text(measurement: Measurement, dataset: str | None) -> str:
    total = _split_size(dataset) if measurement.split == "test" else None
    if measurement.images is None:
        return "not recorded"
    if total is None:
        return f"{measurement.images:,}"
    return f"all {total:,}" if measurement.images == total else f"{measurement.images:,} of {total:,}"


def _split_size(dataset: str | None) -> int | None:
    if not dataset:
        return None
    try:
        from bnnzoo._datasets import dataset_info

        return dataset_info(dataset).test_images
    except Exception:  # a dataset bnnzoo does not know: its split size is not known either
        return None


def _accuracy_lines(metrics: Mapping[str, Any] | None, dataset: str | None) -> list[str]:
    found = measurements(metrics)
    if not found:
        return [
            "No trained weights: no accuracy was measured for the weights in this repository"
            + (f" (dataset: {dataset})." if dataset else ".")
        ]
    first = found[0]
    where = f" {first.split} images of {dataset}" if dataset and first.split else " images"
    count = _images_text(first, dataset)
    headline = (
        f"Top-1 **{_percent(first.top1):.2f}%**"
        + (f" (top-5 {_percent(first.top5):.2f}%)" if first.top5 is not None else "")
        + (f" on {count}{where}" if count != "not recorded" else " (the images it was measured on were not recorded)")
        + f", measured by {first.what}."
    )
    lines = [
        headline,
        "",
        "| measured by | data | images | top-1 | top-5 |",
        "|---|---|---:|---:|---:|",
    ]
    for measurement in found:
        data = ", ".join(
            part for part in (dataset, f"{measurement.split} split" if measurement.split else None) if part
        )
        top5 = f"{_percent(measurement.top5):.2f}%" if measurement.top5 is not None else "-"
        lines.append(
            f"| {measurement.what} | {data or 'not recorded'} | {_images_text(measurement, dataset)} | "
            f"{_percent(measurement.top1):.2f}% | {top5} |"
        )
    lines += ["", "Each accuracy was measured on these weights, on the images counted beside it."]
    return lines


def model_card(
    genotype: Genotype,
    info: Mapping[str, Any],
    *,
    title: str,
    repo_id: str | None,
    num_classes: int,
    in_chans: int,
    input_size: tuple[int, int, int],
    metrics: Mapping[str, Any] | None = None,
    dataset: str | None = None,
    recipe: Mapping[str, Any] | None = None,
    diagram: str | None = None,
    diagram_note: str | None = None,
    files: Mapping[str, str] | None = None,
    license: str = "apache-2.0",
    paper_info: Mapping[str, Any] | str | None = None,
) -> str:
    """The text of ``README.md``: front matter for the Hub, then the card's body in Markdown.

    ``info`` holds the model's op counts at its own input; ``paper_info`` the same genotype's at the
    paper's input with the published row, when the model's input differs from the paper's (or, as
    text, why the genotype is not compared with the paper).
    """
    found = measurements(metrics)
    hub_name = repo_id or "ORG/NAME"
    meta = genotype.metadata
    lines = [_front_matter(title, license, dataset, found[0] if found else None)]
    lines += [
        f"# {title}",
        "",
        f"A binary neural network from bnnzoo: the genotype `{genotype.name}` "
        f"({genotype.space} space) built as a timm model (architecture `bnnzoo_genotype`). Weights and activations "
        "of the body are binary (sign with per-channel scales); the stem and the classifier are real-valued.",
        "",
    ]
    if meta.get("reconstruction") == "true":
        lines += [
            "> **Reconstruction.** This genotype was fitted to the op counts published in the paper's Table 3; it is "
            "not the paper's searched genotype, and the paper's accuracy is not a property of this model.",
            "",
        ]
    lines += [
        "## Model details",
        "",
        f"- genotype: `{genotype.name}` ({genotype.space} space), in `{genotype.name}.bnn` and in `config.json` "
        "(`model_args.genotype`)",
        f"- input: {'x'.join(map(str, input_size))} (channels x height x width), {num_classes} classes",
        f"- parameters: {info['ours']['binary_params']:,} binary, {info['ours']['real_params']:,} real-valued "
        "(as counted for Params below)",
        "",
        "## Op counts",
        "",
        *_op_table(info, paper_info if isinstance(paper_info, Mapping) else None),
        *_comparison_note(info, paper_info),
        "",
        "Counted as the paper counts them: BOPs are binary multiply-accumulates, FLOPs real ones, "
        "Equiv. Ops = FLOPs + BOPs / 64; Params count 1 bit per binary weight and 32 bits per real weight "
        "(BatchNorm, RPReLU and RSign parameters are folded at deployment and not counted).",
    ]
    published = (paper_info if isinstance(paper_info, Mapping) else info).get("published")
    if published and (published.get("cifar10_top1") is not None or published.get("cifar100_top1") is not None):
        claims = [
            f"CIFAR-{n} {published[f'cifar{n}_top1']}%"
            for n in (10, 100)
            if published.get(f"cifar{n}_top1") is not None
        ]
        lines += [
            "",
            f"The paper reports {', '.join(claims)} top-1 for {published['model']}: the paper's claim, "
            "not a measurement of these weights.",
        ]
    lines += ["", "## Accuracy", "", *_accuracy_lines(metrics, dataset)]
    extra = {key: value for key, value in (metrics or {}).items() if isinstance(value, (int, float, str))}
    if found and extra:
        lines += ["", "All recorded metrics:", "", "```json", json.dumps(extra, indent=2), "```"]
    lines += ["", "## Training recipe", ""]
    if recipe:
        lines += ["```yaml", yaml.safe_dump(dict(recipe), sort_keys=True).rstrip(), "```"]
    else:
        lines.append("Not recorded.")
    lines += [
        "",
        "## Usage",
        "",
        "With bnnzoo installed:",
        "",
        "```python",
        "import bnnzoo",
        "",
        f'model = bnnzoo.create_model("hf-hub:{hub_name}", pretrained=True).eval()',
        "```",
        "",
        "With plain timm: importing bnnzoo registers the `bnnzoo_genotype` architecture that `config.json` names.",
        "",
        "```python",
        "import bnnzoo  # noqa: F401  (registers bnnzoo's architectures with timm)",
        "import timm",
        "",
        f'model = timm.create_model("hf-hub:{hub_name}", pretrained=True).eval()',
        "config = timm.data.resolve_data_config({}, model=model)",
        "transform = timm.data.create_transform(**config)",
        "```",
        "",
        "`num_classes=` builds a fresh classifier, `in_chans=` adapts the stem, as for any timm model. "
        "For deployment, `bnnzoo export` writes the binary weights as packed sign bits "
        "(format `bnnzoo.packed/1`).",
    ]
    lines += ["", "## Architecture", ""]
    if diagram:
        lines.append(f"![{genotype.name}]({diagram})")
    if diagram_note:
        lines.append(diagram_note)
    lines += ["", "```", _genotype_text(genotype).rstrip(), "```"]
    if files:
        lines += ["", "## Files", ""]
        lines += [f"- `{name}`: {what}" for name, what in files.items()]
    lines += [
        "",
        "## Citation",
        "",
        f"The search space and the refined binary MBConv block follow *{PAPER_TITLE}* "
        f"(WACV 2023, doi:[{PAPER_DOI}](https://doi.org/{PAPER_DOI})):",
        "",
        "```bibtex",
        BIBTEX,
        "```",
        "",
    ]
    return "\n".join(lines)


def _genotype_text(genotype: Genotype) -> str:
    from bnnzoo.dsl import to_text

    return to_text(genotype)
