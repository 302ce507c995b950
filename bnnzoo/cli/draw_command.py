"""``bnnzoo draw``: Graphviz diagrams of cell and layer-list genotypes (see docs/draw.md)."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

from bnnzoo.cli.parsing import add_command
from bnnzoo.draw import (
    CELL_CHOICES,
    FORMATS,
    DrawError,
    GraphvizMissingError,
    draw_genotype,
    draw_grid,
    render,
    resolve,
)
from bnnzoo.draw.rendering import EXTENSIONS, output_format
from bnnzoo.dsl.types import Genotype, LayerList

DEFAULT_FORMAT = "svg"


def register(subparsers: argparse._SubParsersAction) -> None:
    draw = add_command(
        subparsers,
        "draw",
        description=(
            "Draw cell genotypes as their cells and layer-list genotypes as chains of blocks. "
            "Writes <name>.svg in the current directory unless -o says otherwise. SVG, PNG and PDF "
            "need Graphviz's 'dot' program; DOT source needs nothing."
        ),
        examples=[
            "bnnzoo draw mbconv_a",
            "bnnzoo draw bnas_a --cell normal -o bnas_a_normal.png",
            "bnnzoo draw mbconv_a mbconv_b --grid -o mbconv_ab.svg",
        ],
    )
    draw.add_argument("inputs", nargs="+", metavar="FILE.bnn|ZOO_NAME", help="genotype files or zoo names")
    draw.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help="output file (or a directory; a directory when drawing several inputs without --grid)",
    )
    draw.add_argument(
        "--format", choices=FORMATS, help=f"output format (default: OUT's extension, else {DEFAULT_FORMAT})"
    )
    draw.add_argument(
        "--cell",
        choices=CELL_CHOICES,
        default="all",
        help="the cells of a cell genotype to draw (all: side by side)",
    )
    draw.add_argument("--grid", action="store_true", help="draw all inputs side by side in one diagram")
    draw.set_defaults(run=run_draw)


def run_draw(args: argparse.Namespace) -> int:
    genotypes = [resolve(source) for source in args.inputs]
    if args.grid or len(genotypes) == 1:
        if args.grid:
            graph = draw_grid(genotypes, args.cell)
            stem = _grid_stem(genotypes, args.cell)
        else:
            graph = draw_genotype(genotypes[0], args.cell)
            stem = _stem(genotypes[0], args.cell)
        jobs = [(graph, *_output(args.output, args.format, stem))]
    else:
        directory = _directory(args.output)
        format = args.format or DEFAULT_FORMAT
        jobs = []
        for genotype in genotypes:
            path = directory / f"{_stem(genotype, args.cell)}.{format}"
            jobs.append((draw_genotype(genotype, args.cell), path, format))
        _check_distinct([path for _, path, _ in jobs])

    missing: GraphvizMissingError | None = None
    written: list[Path] = []
    for graph, path, format in jobs:
        try:
            paths = render(graph, path, format)
        except GraphvizMissingError as error:
            missing = error
            paths = error.written
        for written_path in paths:
            print(written_path)
        written += paths
    if missing is not None:
        raise GraphvizMissingError(missing.format, written)
    return 0


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", name) or "genotype"


def _stem(genotype: Genotype, cell: str) -> str:
    if cell == "all" or isinstance(genotype.body, LayerList):
        return _safe(genotype.name)
    return _safe(f"{genotype.name}_{cell}")


def _grid_stem(genotypes: list[Genotype], cell: str) -> str:
    stem = "_vs_".join(_safe(genotype.name) for genotype in genotypes)
    if len(stem) > 100:
        stem = f"grid_of_{len(genotypes)}"
    has_cells = any(not isinstance(genotype.body, LayerList) for genotype in genotypes)
    return f"{stem}_{cell}" if cell != "all" and has_cells else stem


def _is_directory_name(output: str) -> bool:
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _output(output: str | None, format: str | None, stem: str) -> tuple[Path, str]:
    """The file to write and its format, for a single diagram."""
    if output is None or _is_directory_name(output):
        format = format or DEFAULT_FORMAT
        return Path(output or ".") / f"{stem}.{format}", format
    path = Path(output)
    suffix = path.suffix.lower()
    if not suffix:
        format = format or DEFAULT_FORMAT
        return path.with_name(f"{path.name}.{format}"), format
    if format is None:
        return path, output_format(path)
    if suffix in EXTENSIONS and EXTENSIONS[suffix] != format:
        raise DrawError(f"-o {output} names a {EXTENSIONS[suffix]} file but --format is {format}")
    return path, format


def _directory(output: str | None) -> Path:
    """The folder for one diagram per input: -o must name a directory."""
    if output is None:
        return Path(".")
    path = Path(output)
    if path.is_dir():
        return path
    if path.exists() or path.suffix:
        raise DrawError(
            f"-o {output}: with several inputs, -o must be a directory (one diagram per input), "
            "or pass --grid to draw them side by side in one file"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _check_distinct(paths: list[Path]) -> None:
    seen: set[Path] = set()
    for path in paths:
        if path in seen:
            raise DrawError(
                f"two inputs would both be drawn to {path} (same genotype name); "
                "draw them one at a time with -o, or side by side with --grid"
            )
        seen.add(path)
