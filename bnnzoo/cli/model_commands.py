"""``bnnzoo list`` and ``bnnzoo info``: the zoo's models and their op counts."""

from __future__ import annotations

import argparse
import fnmatch
import json

from bnnzoo.cli.parsing import add_command


def register(subparsers: argparse._SubParsersAction) -> None:
    listing = add_command(
        subparsers,
        "list",
        description="List the zoo's models: space, input shape, whether the genotype is a published structure "
        "or a reconstruction, and the tags that have trained weights.",
        examples=["bnnzoo list", "bnnzoo list 'mbconv_*'"],
    )
    listing.add_argument("pattern", nargs="?", default="*", help="a glob such as 'mbconv_*'")
    listing.set_defaults(run=run_list)

    info = add_command(
        subparsers,
        "info",
        description="Op counts of a model (BOPs, FLOPs, Equiv. Ops, Params) as the paper's Table 3 counts them, "
        "beside the published figures where the paper has a row for it.",
        examples=["bnnzoo info bireal_resnet18", "bnnzoo info my_model.bnn --layers", "bnnzoo info bnas_a --json"],
    )
    info.add_argument("model", metavar="NAME|FILE", help="a zoo name or a .bnn genotype file")
    info.add_argument("--json", action="store_true", help="print JSON (schema bnnzoo.info/1)")
    info.add_argument("--layers", action="store_true", help="add a per-layer table")
    info.set_defaults(run=run_info)


def run_list(args: argparse.Namespace) -> int:
    from bnnzoo.dsl.library import zoo_genotype, zoo_genotype_names
    from bnnzoo.zoo import pretrained_tags

    print(f"{'name':20s} {'space':7s} {'input':9s} {'genotype':20s} trained weights")
    for name in zoo_genotype_names():
        if fnmatch.fnmatch(name, args.pattern):
            genotype = zoo_genotype(name)
            kind = "reconstruction" if genotype.metadata.get("reconstruction") == "true" else "published structure"
            tags = ", ".join(pretrained_tags(name)) or "none yet"
            shape = "x".join(map(str, genotype.input_shape))
            print(f"{name:20s} {genotype.space:7s} {shape:9s} {kind:20s} {tags}")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from bnnzoo.dsl.library import resolve_genotype
    from bnnzoo.profile import profile, published_row
    from bnnzoo.profile.report import format_layers, format_row, info_dict

    genotype = resolve_genotype(args.model)
    result = profile(genotype)
    info = info_dict(genotype.name, genotype.space, result, published_row(genotype.name), layers=args.layers)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(format_row(info))
    if args.layers:
        print()
        print(format_layers(result))
    return 0
