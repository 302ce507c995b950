"""``bnnzoo publish`` and ``bnnzoo export``: trained weights to a Hub repository or a packed file."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from bnnzoo.cli.parsing import add_command, hidden_alias
from bnnzoo.errors import BnnzooError


def register(subparsers: argparse._SubParsersAction) -> None:
    publish = add_command(
        subparsers,
        "publish",
        description=(
            "Build the model of NAME|FILE, load --checkpoint into it and write a Hub repository folder "
            "(config.json, model.safetensors, the genotype, a diagram and a model card). With --repo-id the "
            "folder is uploaded too (log in first: `hf auth login`, or set HF_TOKEN). See docs/hub.md."
        ),
        examples=[
            "bnnzoo publish mbconv_a --checkpoint runs/mbconv_a -o hub/mbconv_a",
            "bnnzoo eval mbconv_a --checkpoint runs/mbconv_a --json > eval.json && "
            "bnnzoo publish mbconv_a --checkpoint runs/mbconv_a --eval eval.json",
            "bnnzoo publish mbconv_a --checkpoint runs/mbconv_a --repo-id my-org/mbconv_a --packed",
        ],
    )
    _add_model_and_checkpoint(publish)
    publish.add_argument("--repo-id", metavar="ORG/NAME", help="upload to this Hub repository")
    publish.add_argument("-o", "--output", metavar="DIR", help="the folder to stage (default: ./hub/<NAME>)")
    hidden_alias(publish, "--out", "--output")
    publish.add_argument("--dataset", metavar="D", help="the dataset the weights were trained and measured on")
    measured = publish.add_mutually_exclusive_group()
    measured.add_argument(
        "--eval",
        metavar="FILE",
        help="the accuracy to state: the output of 'bnnzoo eval --json' for these weights (images counted)",
    )
    measured.add_argument("--accuracy", type=float, metavar="X", help="measured top-1 accuracy, in percent (e.g. 91.3)")
    publish.add_argument(
        "--accuracy-images", type=int, metavar="N", help="with --accuracy: how many test images it was measured on"
    )
    publish.add_argument("--license", default="apache-2.0", help="license of the weights (default: apache-2.0)")
    publish.add_argument("--private", action="store_true", help="create the Hub repository as private")
    publish.add_argument(
        "--packed", action="store_true", help="also write <name>.packed.safetensors (binary weights as bits)"
    )
    publish.set_defaults(run=run_publish)

    export = add_command(
        subparsers,
        "export",
        description=(
            "Write the model of NAME|FILE with --checkpoint's weights in the bnnzoo.packed/1 format "
            "(docs/packed_format.md) and print its size beside the profiler's Params (MB)."
        ),
        examples=[
            "bnnzoo export mbconv_a --checkpoint runs/mbconv_a -o mbconv_a.packed.safetensors",
            "bnnzoo export my_model.bnn --checkpoint runs/my_model/final.safetensors -o my_model.safetensors",
        ],
    )
    _add_model_and_checkpoint(export)
    export.add_argument("-o", "--output", required=True, metavar="OUT.safetensors", help="the file to write")
    export.set_defaults(run=run_export)


def _add_model_and_checkpoint(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="NAME|FILE", help="a zoo name or a .bnn genotype file")
    parser.add_argument(
        "--checkpoint",
        required=True,
        metavar="PATH",
        help="a safetensors state dict, or a training checkpoint (its .json, .safetensors or stem)",
    )


def run_publish(args: argparse.Namespace) -> int:
    from bnnzoo.hub import model_from_checkpoint, stage_repo, upload_repo

    if args.repo_id is not None and (args.repo_id.count("/") != 1 or not all(args.repo_id.split("/"))):
        raise BnnzooError(f"--repo-id '{args.repo_id}' must look like ORG/NAME")
    if args.accuracy is not None and not (math.isfinite(args.accuracy) and 0 <= args.accuracy <= 100):
        raise BnnzooError(f"--accuracy {args.accuracy:g}: a top-1 accuracy in percent, between 0 and 100")
    if (args.accuracy is None) != (args.accuracy_images is None):
        raise BnnzooError("--accuracy and --accuracy-images go together: the accuracy and its number of test images")
    if args.accuracy_images is not None and args.accuracy_images < 1:
        raise BnnzooError(f"--accuracy-images {args.accuracy_images}: the number of test images, at least 1")
    evaluation = _read_eval(Path(args.eval)) if args.eval else None
    model, trained = model_from_checkpoint(args.model, args.checkpoint)
    dataset = args.dataset or (evaluation or {}).get("dataset") or trained.dataset
    metrics = dict(trained.metrics)
    if evaluation is not None:
        if evaluation.get("model") not in (None, model.genotype.name):
            name = model.genotype.name
            raise BnnzooError(f"--eval {args.eval}: measured model '{evaluation['model']}', not '{name}'")
        if evaluation.get("dataset") not in (None, dataset):
            raise BnnzooError(f"--eval {args.eval}: measured on {evaluation['dataset']}, but --dataset is {dataset}")
        metrics.update({key: evaluation[key] for key in ("top1", "top5", "loss", "samples") if key in evaluation})
        metrics["split"] = evaluation.get("split", "test")
    if args.accuracy is not None:
        if not dataset:
            raise BnnzooError("--accuracy needs --dataset: the dataset the accuracy was measured on")
        metrics.update(top1=args.accuracy / 100, samples=args.accuracy_images, split="test")  # fractions
    name = args.repo_id.split("/")[1] if args.repo_id else model.genotype.name
    out = Path(args.output) if args.output else Path("hub") / name
    data_config: dict[str, object] = {}
    if trained.image_size:
        data_config["input_size"] = (model.in_chans, trained.image_size, trained.image_size)
    if trained.mean and trained.std and len(trained.mean) == len(trained.std) == model.in_chans:
        data_config.update(mean=trained.mean, std=trained.std)
    folder = stage_repo(
        model,
        out,
        metrics=metrics or None,
        dataset=dataset,
        recipe=trained.config or None,
        repo_id=args.repo_id,
        data_config=data_config or None,
        license=args.license,
        packed=args.packed,
    )
    print(f"staged {folder}")
    if args.repo_id:
        url = upload_repo(folder, args.repo_id, private=args.private)
        print(f"uploaded to {args.repo_id}: {url}")
        print(f'load it with bnnzoo.create_model("hf-hub:{args.repo_id}", pretrained=True)')
    else:
        print(f'load it with bnnzoo.create_model("local-dir:{folder}", pretrained=True)')
        print("upload it with --repo-id ORG/NAME")
    return 0


def _read_eval(path: Path) -> dict:
    """A `bnnzoo eval --json` result: top-1 (a fraction) and the number of images it was measured on."""
    try:
        result = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BnnzooError(f"--eval {path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BnnzooError(f"--eval {path}: not the JSON of 'bnnzoo eval --json' ({exc})") from None
    top1, samples = (result.get("top1"), result.get("samples")) if isinstance(result, dict) else (None, None)
    if not isinstance(top1, (int, float)) or not 0 <= top1 <= 1 or not isinstance(samples, int) or samples < 1:
        raise BnnzooError(f"--eval {path}: not the JSON of 'bnnzoo eval --json' (it needs top1 and samples)")
    return result


def run_export(args: argparse.Namespace) -> int:
    from bnnzoo.export import export_packed, packed_size
    from bnnzoo.hub import model_from_checkpoint

    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise BnnzooError(f"-o {output}: name the packed file OUT.safetensors")
    model, _ = model_from_checkpoint(args.model, args.checkpoint)
    export_packed(model, output)
    size = packed_size(model, output)
    print(
        f"{output}: {size.file_mb:.3f} MB ({size.file_bytes:,} bytes), {size.ratio:.3f}x the profiler's "
        f"Params ({size.params_mb:.3f} MB)"
    )
    return 0
