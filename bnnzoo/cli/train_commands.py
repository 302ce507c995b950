"""``bnnzoo train`` and ``bnnzoo eval``: the training recipe and evaluation from the command line.

``bnnzoo train`` runs :func:`bnnzoo.train.recipe.train` (see docs/training.md); under ``torchrun``
every process runs it and only rank 0 prints and writes files. ``bnnzoo eval`` reports top-1, top-5,
loss and images per second of a model with trained weights (``--pretrained`` or ``--checkpoint``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from bnnzoo.cli import EXIT_INTERRUPTED
from bnnzoo.cli.parsing import add_command, add_progress_flag, hidden_alias, show_progress
from bnnzoo.errors import BnnzooError, DataError, ModelError

_DEFAULTS: dict[str, Any] = {}


def _default(name: str) -> Any:
    if not _DEFAULTS:
        import dataclasses

        from bnnzoo.train.config import TrainConfig

        _DEFAULTS.update(
            {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}
        )
    return _DEFAULTS[name]


def register(subparsers: argparse._SubParsersAction) -> None:
    train = add_command(
        subparsers,
        "train",
        description="Two-step BNN training (binary activations with real weights, then fully binary) "
        "with Adam and lr decay to 0; see docs/training.md. Under torchrun every process runs this "
        "command and rank 0 writes OUTDIR/{checkpoint.*,metrics.jsonl,final.*}.",
        examples=[
            "bnnzoo train mbconv_a --epochs 10 -o runs/mbconv_a",
            "bnnzoo train my_model.bnn --dataset cifar10 --data-root data/cifar10 --device cuda --amp",
            "bnnzoo train mbconv_a --epochs 2 --train-limit 2000 --test-limit 500 -o runs/quick",
        ],
    )
    train.add_argument("model", metavar="NAME|FILE", help="a zoo name or a .bnn genotype file")
    _data_arguments(train)
    train.add_argument("--image-size", type=int, help="image side (default: the genotype's input size)")
    train.add_argument("--epochs", type=int, default=_default("epochs"), help="total epochs over both steps")
    train.add_argument("--batch-size", type=int, default=_default("batch_size"), help="per process")
    train.add_argument("--lr", type=float, default=_default("lr"), help="Adam learning rate")
    train.add_argument("--schedule", choices=("linear", "cosine"), default=_default("schedule"))
    train.add_argument("--no-two-step", dest="two_step", action="store_false", help="train fully binary throughout")
    train.add_argument(
        "--step1-fraction", type=float, default=_default("step1_fraction"), help="share of the epochs in step 1"
    )
    train.add_argument("--weight-decay", type=float, default=_default("weight_decay"), help="step 1 weight decay")
    train.add_argument(
        "--weight-decay-step2", type=float, default=_default("weight_decay_step2"), help="step 2 weight decay"
    )
    train.add_argument("--no-augment", dest="augment", action="store_false", help="no random crops or flips")
    train.add_argument("--teacher", metavar="NAME|PATH", help="distil from a timm model or a bnnzoo run's weights")
    train.add_argument("--teacher-weights", metavar="FILE", help="safetensors weights for a timm --teacher")
    train.add_argument("--kd-alpha", type=float, default=_default("kd_alpha"), help="weight of the KD term")
    train.add_argument("--kd-temperature", type=float, default=_default("kd_temperature"))
    train.add_argument("--device", default=_default("device"), help="cpu or cuda")
    train.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    train.add_argument("--amp-dtype", choices=("bf16", "fp16"), default=_default("amp_dtype"))
    train.add_argument("--seed", type=int, default=_default("seed"))
    train.add_argument("--max-steps", type=int, dest="max_steps_per_epoch", help="at most N steps per epoch")
    train.add_argument("--train-limit", type=int, metavar="N", help="use only the first N training images")
    train.add_argument("--test-limit", type=int, metavar="N", help="use only the first N test images")
    train.add_argument("--workers", type=int, default=_default("num_workers"), help="data loader workers")
    train.add_argument("--resume", action="store_true", help="continue the run in OUTDIR from its checkpoint")
    train.add_argument("--overwrite", action="store_true", help="replace a finished or interrupted run in OUTDIR")
    add_progress_flag(train)
    train.add_argument("-o", "--output", metavar="OUTDIR", help="output folder (default runs/<name>-<dataset>)")
    train.set_defaults(run=run_train)

    evaluate = add_command(
        subparsers,
        "eval",
        description="Top-1, top-5, loss and images per second of a model on a test set, with trained weights "
        "from --checkpoint (a run of bnnzoo train) or --pretrained (the zoo's published weights).",
        examples=[
            "bnnzoo eval mbconv_a --checkpoint runs/mbconv_a",
            "bnnzoo eval mbconv_a --checkpoint runs/mbconv_a/final.safetensors --test-limit 1000 --json",
            "bnnzoo eval my_model.bnn --checkpoint runs/my_model --dataset cifar10 --data-root data/cifar10",
        ],
    )
    evaluate.add_argument("model", metavar="NAME|FILE", help="a zoo name or a .bnn genotype file")
    source = evaluate.add_mutually_exclusive_group()
    source.add_argument("--pretrained", action="store_true", help="the zoo's published weights")
    source.add_argument(
        "--checkpoint",
        metavar="PATH",
        help="a training checkpoint (stem or .json), a final.safetensors or a run folder",
    )
    _data_arguments(evaluate, dataset_default=None)
    evaluate.add_argument("--image-size", type=int, help="image side (default: from the weights or the genotype)")
    evaluate.add_argument("--batch-size", type=int, default=256, help="images per batch")
    evaluate.add_argument("--test-limit", type=int, metavar="N", help="evaluate the first N test images only")
    hidden_alias(evaluate, "--limit", "--test-limit", type=int)
    evaluate.add_argument("--device", default="cpu", help="cpu or cuda")
    evaluate.add_argument("--workers", type=int, default=0, help="data loader workers")
    evaluate.add_argument("--json", action="store_true", help="print the results as JSON")
    add_progress_flag(evaluate)
    evaluate.set_defaults(run=run_eval)


def _data_arguments(parser: argparse.ArgumentParser, dataset_default: str | None = "fashion_mnist") -> None:
    parser.add_argument(
        "--dataset",
        default=dataset_default,
        help="fashion_mnist, cifar10, cifar100, imagefolder or synthetic (default "
        + ("fashion_mnist" if dataset_default else "the weights' dataset, else fashion_mnist")
        + ")",
    )
    parser.add_argument("--data-root", metavar="DIR", help="where the dataset's files are (never downloaded)")


# --------------------------------------------------------------------------- train


def run_train(args: argparse.Namespace) -> int:
    from bnnzoo.train.config import TrainConfig, TrainingInterrupted
    from bnnzoo.train.recipe import train

    config = TrainConfig(
        model=args.model,
        dataset=args.dataset,
        data_root=args.data_root,
        image_size=args.image_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        schedule=args.schedule,
        two_step=args.two_step,
        step1_fraction=args.step1_fraction,
        weight_decay=args.weight_decay,
        weight_decay_step2=args.weight_decay_step2,
        augment=args.augment,
        teacher=args.teacher,
        teacher_weights=args.teacher_weights,
        kd_alpha=args.kd_alpha,
        kd_temperature=args.kd_temperature,
        seed=args.seed,
        device=args.device,
        amp=args.amp,
        amp_dtype=args.amp_dtype,
        max_steps_per_epoch=args.max_steps_per_epoch,
        train_limit=args.train_limit,
        test_limit=args.test_limit,
        output_dir=args.output,
        num_workers=args.workers,
        resume=args.resume,
        overwrite=args.overwrite,
        progress=args.progress,
    )
    try:
        result = train(config, on_epoch=_print_epoch)
    except TrainingInterrupted as stop:
        if stop.is_main:
            print(f"bnnzoo train: {stop.message}", file=sys.stderr)
        return EXIT_INTERRUPTED
    if _is_main_process():
        print(
            f"done: test top-1 {result.test_top1:.2%}, top-5 {result.test_top5:.2%}, loss {result.test_loss:.4f}; "
            f"weights {result.final_weights}, metrics {result.output_dir / 'metrics.jsonl'}"
        )
    return 0


def _print_epoch(record: dict[str, Any], model: Any) -> None:
    print(
        f"epoch {record['epoch']}/{record['epochs']} (step {record['phase']}): "
        f"train loss {record['train_loss']:.4f} acc {record['train_acc']:.2%} | "
        f"test loss {record['test_loss']:.4f} top-1 {record['test_top1']:.2%} top-5 {record['test_top5']:.2%} | "
        f"lr {record['lr']:.2e} | {record['seconds']:.1f} s",
        flush=True,
    )


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


# --------------------------------------------------------------------------- eval


def run_eval(args: argparse.Namespace) -> int:
    import torch

    from bnnzoo._create import create_model
    from bnnzoo.train.data import dataset_info, load_dataset
    from bnnzoo.train.evaluate import evaluate
    from bnnzoo.train.weights import apply_weights, load_trained_weights

    weights = load_trained_weights(args.checkpoint) if args.checkpoint else None
    dataset = args.dataset or (weights.dataset if weights is not None and weights.dataset else "fashion_mnist")
    info = dataset_info(dataset)
    in_chans = info.input_shape[0]
    device = _eval_device(args.device)

    if args.pretrained:
        model = create_model(args.model, pretrained=True)
        source = "pretrained weights"
    else:
        num_classes = info.num_classes
        if weights is not None and "fc.weight" in weights.state_dict:
            num_classes = int(weights.state_dict["fc.weight"].shape[0])
        model = create_model(args.model, num_classes=num_classes, in_chans=in_chans)
        source = f"weights {weights.source}" if weights is not None else "UNTRAINED weights"
        if weights is not None:
            apply_weights(model, weights)
    genotype = getattr(model, "genotype", None)
    image_size = args.image_size or (weights.image_size if weights is not None else None)
    if image_size is None and genotype is not None:
        image_size = genotype.input_shape[-1]

    test_set = load_dataset(dataset, "test", args.data_root, image_size=image_size, limit=args.test_limit)
    model_classes = getattr(model, "num_classes", None)
    data_classes = _classes(test_set, info.num_classes)
    if model_classes is not None and model_classes != data_classes:
        raise ModelError(f"the model predicts {model_classes} classes but {dataset} has {data_classes}")
    model_chans = getattr(model, "in_chans", None)
    if model_chans is not None and model_chans != in_chans:
        raise ModelError(f"the model takes {model_chans}-channel images but {dataset} has {in_chans} channels")
    if len(test_set) == 0:  # type: ignore[arg-type]
        raise DataError(f"nothing to evaluate: the {dataset} test set is empty")

    model.to(device)
    with torch.no_grad():
        result = evaluate(
            model,
            test_set,
            device,
            batch_size=args.batch_size,
            num_workers=args.workers,
            progress=show_progress(args),
        )
    name = genotype.name if genotype is not None else args.model
    if args.json:
        print(json.dumps({"model": name, "dataset": dataset, "split": "test", "source": source, **result}, indent=2))
        return 0
    print(f"{name} on {dataset} test ({result['samples']} images, {source})")
    print(f"top-1     {result['top1']:.2%}")
    print(f"top-5     {result['top5']:.2%}")
    print(f"loss      {result['loss']:.4f}")
    print(f"images/s  {result['images_per_second']:.1f}")
    return 0


def _eval_device(name: str) -> Any:
    import torch

    try:
        device = torch.device(name)
    except RuntimeError:
        raise BnnzooError(f"unknown device {name!r} (choose cpu or cuda)") from None
    if device.type not in ("cpu", "cuda"):
        raise BnnzooError(f"unknown device {name!r} (choose cpu or cuda)")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BnnzooError("--device cuda, but CUDA is not available on this machine")
    return device


def _classes(dataset: Any, default: int) -> int:
    from torch.utils.data import Subset

    base = dataset.dataset if isinstance(dataset, Subset) else dataset
    classes = getattr(base, "classes", None)
    if classes:
        return len(classes)
    return int(getattr(base, "num_classes", default))
