"""Train zoo models on Fashion-MNIST, measure them and ship them as packed weights in the package.

Two subcommands:

``train MODEL... --out OUT``
    Trains each model with bnnzoo's two-step recipe (:func:`bnnzoo.train.recipe.train`) on the
    Fashion-MNIST that the Debian package ``dataset-fashion-mnist`` provides, one process per
    model (``--jobs`` at a time; on one GPU they share it, each with mixed precision when
    ``--amp``). Runs live in ``--work`` (checkpoints; a finished run is not trained again, an
    interrupted one resumes). Each trained model is exported as a ``bnnzoo.packed/1`` file, loaded
    back from it, and measured on the test set (all 10,000 images unless ``--eval-limit``; top-1,
    top-5 and top-1 on the first 1,000), with golden logits on the first 8 test images and its op
    counts at 1x32x32. OUT receives at most 8 files of at most 16 MB each: ``results.json`` (all
    figures, recipes and model cards) and ``weights-<k>.tar`` (the packed files).
    ``--tiny`` is a minutes-long CPU run of the same code (CI runs it).

``ship OUT --repo ROOT``
    Copies what ``train`` returned into a checkout: the packed files and golden logits into
    ``bnnzoo/weights/`` with their sha256 in ``manifest.json``, the cards into
    ``docs/model_cards/``; prints the README's table rows.

The GPU command (one H200, <= 8 minutes) and the CPU budget run are in docs/model_cards/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import platform
import sys
import tarfile
import time
from pathlib import Path
from typing import Any

DATASET = "fashion_mnist"
GOLDEN_IMAGES = 8
FIRST = 1000
LOAD_NOTE = "train_load.txt"  # how loaded the machine was while the run trained
MAX_RESULT_FILES = 8
MAX_PART_BYTES = 15 * 1024 * 1024  # under the 16 MB a returned file may have
TINY = {"epochs": 2, "batch_size": 16, "max_steps": 2, "test_limit": 16, "eval_limit": 64}


# -- training and measuring one model (runs in its own process) --------------------------------


def _hardware(device: str) -> str:
    import torch

    if device.startswith("cuda"):
        return f"1x {torch.cuda.get_device_name(0)} (CUDA), shared by the models trained at once"
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU: {cpu}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}"


def _load_trained(run: Path):
    """The trained model of a finished run, rebuilt from its ``final.safetensors`` and ``final.json``."""
    from bnnzoo import dsl
    from bnnzoo._checkpoint import load_safetensors
    from bnnzoo.build.binary import set_binary_weights
    from bnnzoo.zoo import create_model

    info = json.loads((run / "final.json").read_text())
    genotype = dsl.parse(info["genotype"], str(run / "final.json"))
    model = create_model(genotype, num_classes=info["num_classes"], in_chans=info["in_chans"])
    model.load_state_dict(load_safetensors(run / "final.safetensors"), strict=True)
    set_binary_weights(model, bool(info["binary_weights"]))
    return model.eval(), info


def _measure(model, device: str, eval_limit: int | None) -> dict[str, Any]:
    """Top-1 / top-5 over the test set (fp32) and top-1 over its first images, from one pass."""
    import torch

    from bnnzoo.train.data import load_dataset, make_loader

    test = load_dataset(DATASET, "test", image_size=32, limit=eval_limit)
    top1, top5 = [], []
    model = model.to(device)
    with torch.no_grad():
        for images, labels in make_loader(test, 500, shuffle=False):
            labels = labels.to(device)
            best = model(images.to(device)).float().topk(5, dim=1).indices
            top1.append(best[:, 0].eq(labels).cpu())
            top5.append(best.eq(labels[:, None]).any(dim=1).cpu())
    hit1, hit5 = torch.cat(top1), torch.cat(top5)
    first = min(FIRST, len(hit1))
    return {
        "test_images": len(hit1),
        "top1": round(hit1.double().mean().item() * 100, 2),
        "top5": round(hit5.double().mean().item() * 100, 2),
        "first_images": first,
        "top1_first": round(hit1[:first].double().mean().item() * 100, 2),
        "label_names": list(test.classes),
    }


def _golden(model) -> dict[str, Any]:
    import torch

    from bnnzoo.train.data import load_dataset

    test = load_dataset(DATASET, "test", image_size=32, limit=GOLDEN_IMAGES)
    images = torch.stack([test[i][0] for i in range(len(test))])
    with torch.no_grad():
        logits = model.cpu()(images)
    return {
        "images": f"{DATASET} test images 0..{len(test) - 1}, padded to 32x32, normalised with the tag's mean/std",
        "labels": [int(test[i][1]) for i in range(len(test))],
        "logits": logits.tolist(),
    }


def _op_counts(model) -> dict[str, Any]:
    from bnnzoo.profile import profile

    counts = profile(model, (model.in_chans, 32, 32))
    return {
        "input_size": [model.in_chans, 32, 32],
        "bops_g": round(counts.bops / 1e9, 4),
        "flops_m": round(counts.flops / 1e6, 3),
        "equiv_ops_m": round(counts.equiv_ops / 1e6, 3),
        "params_mb": round(counts.params_mb, 3),
    }


def train_and_measure(job: dict[str, Any]) -> dict[str, Any]:
    """Train one model (unless its run is finished), export it packed, load it back and measure it."""
    import torch

    torch.set_num_threads(job["threads"])
    from bnnzoo.export.packed import export_packed, load_packed
    from bnnzoo.train.config import TrainConfig
    from bnnzoo.train.recipe import train

    run = Path(job["work"]) / job["model"]
    seconds_file = run / "train_seconds.txt"
    load_before = os.getloadavg()
    if not (run / "final.json").is_file():
        config = TrainConfig(
            model=job["model"],
            dataset=DATASET,
            epochs=job["epochs"],
            batch_size=job["batch_size"],
            lr=job["lr"],
            max_steps_per_epoch=job["max_steps"],
            train_limit=job["train_limit"],
            test_limit=job["test_limit"],
            device=job["device"],
            amp=job["amp"],
            num_workers=job["workers"],
            output_dir=str(run),
            resume=(run / "checkpoint.json").is_file(),
            progress=False,
        )
        start = time.time()
        train(config)
        seconds_file.write_text(f"{time.time() - start:.1f}\n")
        before, after = load_before[0], os.getloadavg()[0]
        (run / LOAD_NOTE).write_text(f"1-minute load average {before:.1f} at the start, {after:.1f} at the end\n")
    trained, info = _load_trained(run)
    tag = f"{job['model']}.{DATASET}"
    packed = export_packed(trained, run / f"{tag}.safetensors")
    model = load_packed(packed)
    golden = _golden(model)
    if not torch.equal(torch.tensor(golden["logits"]), trained.cpu()(_golden_batch())):
        raise RuntimeError(f"{tag}: the packed model's logits differ from the trained model's")
    measured = _measure(model, job["device"], job["eval_limit"])
    recipe = info["recipe"]
    return {
        "tag": tag,
        "model": job["model"],
        "genotype_name": info["genotype_name"],
        "file": packed.name,
        "path": str(packed),
        "sha256": hashlib.sha256(packed.read_bytes()).hexdigest(),
        "bytes": packed.stat().st_size,
        "dataset": DATASET,
        "input_size": [info["in_chans"], info["image_size"], info["image_size"]],
        "mean": info["mean"],
        "std": info["std"],
        "num_classes": info["num_classes"],
        "label_names": measured.pop("label_names"),
        "accuracy": measured,
        "recipe": recipe,
        "train_images_seen": recipe["steps_per_epoch"] * recipe["batch_size_per_process"] * recipe["epochs"],
        "train_seconds": float(seconds_file.read_text()) if seconds_file.is_file() else None,
        "hardware": _hardware(job["device"]),
        "load_note": (run / LOAD_NOTE).read_text().strip() if (run / LOAD_NOTE).is_file() else "not recorded",
        "op_counts": _op_counts(model),
        "golden": golden,
        "budget": job["budget"],
    }


def _golden_batch():
    import torch

    from bnnzoo.train.data import load_dataset

    test = load_dataset(DATASET, "test", image_size=32, limit=GOLDEN_IMAGES)
    return torch.stack([test[i][0] for i in range(len(test))])


# -- model cards ----------------------------------------------------------------------------------


def model_card(entry: dict[str, Any]) -> str:
    """The Markdown card of one shipped tag: only figures measured on these weights."""
    import yaml

    from bnnzoo.dsl.library import zoo_genotype

    genotype = zoo_genotype(entry["model"])
    acc, ops, recipe = entry["accuracy"], entry["op_counts"], entry["recipe"]
    seconds = entry["train_seconds"]
    minutes = f"{seconds / 60:.1f} min" if seconds is not None else "not recorded"
    shape = "x".join(map(str, entry["input_size"]))
    reconstruction = genotype.metadata.get("reconstruction") == "true"
    lines = [
        f"# {entry['tag']}",
        "",
        f"`{entry['model']}` trained on Fashion-MNIST, shipped inside the bnnzoo package "
        f"(`bnnzoo/weights/{entry['file']}`, format `bnnzoo.packed/1`, {entry['bytes']:,} bytes, "
        f"sha256 `{entry['sha256']}`).",
        "",
        "```python",
        "import bnnzoo, timm",
        "",
        f'model = bnnzoo.create_model("{entry["tag"]}", pretrained=True).eval()  # offline',
        f'model = timm.create_model("{entry["tag"]}", pretrained=True).eval()    # the same, after import bnnzoo',
        "```",
        "",
    ]
    if reconstruction:
        lines += [
            "> **Reconstruction.** The genotype was fitted to the op counts of the paper's Table 3; it is not the "
            "paper's searched genotype.",
            "",
        ]
    lines += [
        f"> **{entry['budget']}** These are Fashion-MNIST figures of these weights; they are not comparable with "
        "any CIFAR-10 or ImageNet accuracy (the paper reports only those).",
        "",
        "## Measured accuracy (these weights, loaded from the shipped file)",
        "",
        "| test images | top-1 | top-5 |",
        "|---|---:|---:|",
        f"| all {acc['test_images']:,} (Fashion-MNIST test set) | {acc['top1']:.2f}% | {acc['top5']:.2f}% |",
        f"| the first {acc['first_images']:,} | {acc['top1_first']:.2f}% | |",
        "",
        f"Input {shape} (28x28 images zero-padded to 32x32), mean {entry['mean']}, std {entry['std']}, "
        f"{entry['num_classes']} classes: {', '.join(entry['label_names'])}.",
        "",
        "## Training",
        "",
        f"- recipe: bnnzoo's two-step recipe (`bnnzoo.train`): {recipe['step1_epochs']} epoch(s) with binary "
        f"activations and real weights, then {recipe['step2_epochs']} fully binary; Adam, lr {recipe['lr']}, "
        f"linear decay to 0 in each step, batch {recipe['batch_size_per_process']}, random 4 px crops, seed "
        f"{recipe['seed']}",
        f"- epochs: {recipe['epochs']} of {recipe['steps_per_epoch']} steps each; "
        f"{entry['train_images_seen']:,} training images seen in all, drawn from "
        f"{'the first ' + format(recipe['train_limit'], ',') if recipe.get('train_limit') else 'all'} "
        f"{recipe['train_samples']:,} training images (each epoch a fresh random order)",
        f"- hardware: {entry['hardware']}",
        f"- training time: {minutes} wall; machine load: {entry['load_note']}",
        "",
        "Full recipe, as the run recorded it:",
        "",
        "```yaml",
        yaml.safe_dump(recipe, sort_keys=True).rstrip(),
        "```",
        "",
        f"## Op counts at {shape}",
        "",
        "| BOPs (G) | FLOPs (M) | Equiv. Ops (M) | Params (MB) |",
        "|---:|---:|---:|---:|",
        f"| {ops['bops_g']} | {ops['flops_m']} | {ops['equiv_ops_m']} | {ops['params_mb']} |",
        "",
        "Counted as the paper's Table 3 counts them (Equiv. Ops = FLOPs + BOPs / 64; 1 bit per binary weight, 32 "
        f"per real one), but at this model's {shape} input: the stem differs from the 3x32x32 CIFAR model of Table 3.",
        "",
        "## Checks",
        "",
        f"`tests/test_shipped_weights.py` loads the tag offline, compares its logits on the first "
        f"{len(entry['golden']['labels'])} test images with the golden values in "
        f"`bnnzoo/weights/{entry['tag']}.golden.json`, and its top-1 on the first {acc['first_images']:,} test "
        f"images with {acc['top1_first']:.2f}% (within 1 point).",
        "",
    ]
    return "\n".join(lines)


# -- returning the results as a few files ------------------------------------------------------


def bundle(entries: list[dict[str, Any]], out: Path) -> list[Path]:
    """``results.json`` plus ``weights-<k>.tar`` parts of at most 15 MB; at most 8 files in all."""
    out.mkdir(parents=True, exist_ok=True)
    parts: list[list[dict[str, Any]]] = [[]]
    size = 0
    for entry in sorted(entries, key=lambda e: e["tag"]):
        if entry["bytes"] > MAX_PART_BYTES:
            raise SystemExit(f"{entry['tag']}: {entry['bytes']} bytes do not fit a returned file")
        if size + entry["bytes"] + 10_240 > MAX_PART_BYTES and parts[-1]:
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += entry["bytes"] + 10_240
    if len(parts) + 1 > MAX_RESULT_FILES:
        raise SystemExit(f"{len(parts) + 1} result files exceed {MAX_RESULT_FILES}")
    written = []
    for index, part in enumerate(parts, 1):
        path = out / f"weights-{index}.tar"
        with tarfile.open(path, "w") as tar:
            for entry in part:
                tar.add(entry["path"], arcname=entry["file"])
                entry["part"] = path.name
        written.append(path)
    results = [{key: value for key, value in entry.items() if key != "path"} for entry in entries]
    for entry in results:
        entry["card"] = model_card(entry)
    (out / "results.json").write_text(json.dumps({"format": "bnnzoo.train_zoo/1", "tags": results}, indent=1))
    return [*written, out / "results.json"]


def ship(out: Path, repo: Path) -> None:
    """Install the returned results into checkout ``repo``: weights, golden values, manifest, cards."""
    results = json.loads((out / "results.json").read_text())["tags"]
    weights = repo / "bnnzoo" / "weights"
    cards = repo / "docs" / "model_cards"
    cards.mkdir(parents=True, exist_ok=True)
    manifest_path = weights / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    for entry in results:
        with tarfile.open(out / entry["part"]) as tar:
            data = tar.extractfile(entry["file"]).read()  # type: ignore[union-attr]
        if hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise SystemExit(f"{entry['tag']}: the returned file does not match its sha256")
        (weights / entry["file"]).write_bytes(data)
        golden_name = f"{entry['tag']}.golden.json"
        (weights / golden_name).write_text(json.dumps(entry["golden"], indent=1) + "\n")
        manifest["tags"][entry["tag"]] = {
            "file": entry["file"],
            "sha256": entry["sha256"],
            "bytes": entry["bytes"],
            "golden": golden_name,
            "dataset": entry["dataset"],
            "input_size": entry["input_size"],
            "mean": entry["mean"],
            "std": entry["std"],
            "num_classes": entry["num_classes"],
            "label_names": entry["label_names"],
            "license": "apache-2.0",
            "hf_hub_id": None,  # set once the tag is published: bnnzoo publish --repo-id ORG/NAME
            "notes": (entry["budget"],),
            "accuracy": entry["accuracy"],
            "card": f"docs/model_cards/{entry['tag']}.md",
        }
        (cards / f"{entry['tag']}.md").write_text(model_card(entry))
        acc = entry["accuracy"]
        print(
            f"| `{entry['tag']}` | {acc['top1']:.2f}% | {acc['top5']:.2f}% | {entry['recipe']['epochs']} "
            f"| {entry['train_images_seen']:,} | {entry['hardware']} | {(entry['train_seconds'] or 0) / 60:.0f} min "
            f"| {entry['bytes'] / 1e6:.2f} MB |"
        )
    manifest["tags"] = dict(sorted(manifest["tags"].items()))
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    _drop_unpublished(repo / "bnnzoo" / "zoo" / "weights.json", [entry["tag"] for entry in results])


def _drop_unpublished(path: Path, tags: list[str]) -> None:
    """A tag that now ships is no longer one of the zoo's named-but-unpublished tags."""
    if not path.is_file():
        return
    data = json.loads(path.read_text())
    unpublished = data.get("unpublished", {})
    for tag in tags:
        name, _, suffix = tag.partition(".")
        unpublished.get(name, {}).pop(suffix, None)
        if name in unpublished and not unpublished[name]:
            del unpublished[name]
    path.write_text(json.dumps(data, indent=2) + "\n")


# -- command line -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("train", help="train, export and measure zoo models")
    run.add_argument("models", nargs="+", help="zoo names, e.g. xnor_resnet18 bireal_resnet18 mbconv_a")
    run.add_argument("--out", type=Path, required=True, help="where the <= 8 result files go")
    run.add_argument("--work", type=Path, default=Path("runs/zoo"), help="the training runs (default runs/zoo)")
    run.add_argument("--epochs", type=int, default=10)
    run.add_argument("--batch-size", type=int, default=128)
    run.add_argument("--lr", type=float, default=1e-3)
    run.add_argument("--max-steps", type=int, default=None, help="at most N steps per epoch")
    run.add_argument("--train-limit", type=int, default=None, help="only the first N training images")
    run.add_argument("--test-limit", type=int, default=1000, help="test images of the per-epoch evaluation")
    run.add_argument("--eval-limit", type=int, default=None, help="test images of the final measure (all)")
    run.add_argument("--device", default="cpu")
    run.add_argument("--amp", action="store_true", help="mixed precision (CUDA)")
    run.add_argument("--jobs", type=int, default=None, help="models trained at once (default: all)")
    run.add_argument("--threads", type=int, default=1, help="torch threads per process")
    run.add_argument("--workers", type=int, default=0, help="data loader workers per process")
    run.add_argument("--budget", default=None, help="the sentence the card says about the budget")
    run.add_argument("--tiny", action="store_true", help="a minutes-long CPU run of the same code")
    put = sub.add_parser("ship", help="install returned results into a checkout")
    put.add_argument("out", type=Path)
    put.add_argument("--repo", type=Path, default=Path(__file__).resolve().parents[1])
    return parser


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.command == "ship":
        ship(args.out, args.repo)
        return
    settings = {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "max_steps": args.max_steps,
        "test_limit": args.test_limit,
        "eval_limit": args.eval_limit,
    }
    if args.tiny:
        settings.update(TINY)
    budget = args.budget or ("Tiny CI run: not a trained model." if args.tiny else "Full budget run.")
    jobs = [
        {
            **settings,
            "model": name,
            "work": str(args.work),
            "lr": args.lr,
            "train_limit": args.train_limit,
            "device": args.device,
            "amp": args.amp,
            "threads": args.threads,
            "workers": args.workers,
            "budget": budget,
        }
        for name in args.models
    ]
    if len(jobs) == 1:
        entries = [train_and_measure(jobs[0])]
    else:  # one process per model: separate CUDA contexts share the GPU
        with mp.get_context("spawn").Pool(args.jobs or len(jobs)) as pool:
            entries = pool.map(train_and_measure, jobs)
    for path in bundle(entries, args.out):
        print(f"{path} ({path.stat().st_size:,} bytes)")
    for entry in entries:
        print(f"{entry['tag']}: top-1 {entry['accuracy']['top1']:.2f}% top-5 {entry['accuracy']['top5']:.2f}%")


if __name__ == "__main__":
    sys.exit(main())
