"""``search_curves.png``: how a search went, epoch by epoch.

The first row has three panels: the mean normalised alpha entropy (1 = uniform, with the
"decided" line at 0.5), the train and validation losses, and their accuracies. Below them is one
small panel per choice point (a cell edge or an MBConv layer): its mixing weights over the
epochs, one line per candidate. Drawn with matplotlib's object API on the Agg canvas, so it works
headless and leaves pyplot's global state alone.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bnnzoo._atomic import atomic_path

SUMMARY_PANELS = ("alpha entropy", "loss", "accuracy")
POINT_COLUMNS = 7
DECIDED_ENTROPY_LINE = 0.5


def search_figure(history: list[dict[str, Any]], arch: list[tuple[str, list[str], list[str]]]) -> Figure:
    """The figure for a search ``history`` (rows of search_log.jsonl).

    ``arch`` describes each architecture module: (label, names of its choice points, names of
    its candidates), in the order of the rows' ``mixing`` entries.
    """
    epochs = [row["epoch"] for row in history]
    points = [(label, point, index, choices) for label, names, choices in arch for index, point in enumerate(names)]
    point_rows = math.ceil(len(points) / POINT_COLUMNS)
    figure = Figure(figsize=(2.6 * POINT_COLUMNS, 3.2 + 1.9 * point_rows), layout="constrained")
    grid = figure.add_gridspec(1 + point_rows, POINT_COLUMNS, height_ratios=[1.6] + [1.0] * point_rows)
    thirds = [(0, 2), (2, 5), (5, 7)]
    entropy_ax, loss_ax, acc_ax = (figure.add_subplot(grid[0, a:b]) for a, b in thirds)

    entropy_ax.plot(epochs, [row["alpha_entropy_normalized"] for row in history], marker="o")
    entropy_ax.axhline(DECIDED_ENTROPY_LINE, color="grey", linestyle="--", linewidth=1)
    entropy_ax.set(title="alpha entropy (1 = uniform)", xlabel="epoch", ylim=(0, 1.05))
    for split in ("train", "val"):
        loss_ax.plot(epochs, [row[f"{split}_loss"] for row in history], marker="o", label=split)
        acc_ax.plot(epochs, [100 * row[f"{split}_acc"] for row in history], marker="o", label=split)
    loss_ax.set(title="loss", xlabel="epoch")
    acc_ax.set(title="accuracy (%)", xlabel="epoch")
    loss_ax.legend(fontsize="small")
    acc_ax.legend(fontsize="small")

    module_index = {label: i for i, (label, _, _) in enumerate(arch)}
    for slot, (label, point, index, choices) in enumerate(points):
        ax = figure.add_subplot(grid[1 + slot // POINT_COLUMNS, slot % POINT_COLUMNS])
        series = [row["mixing"][module_index[label]][index] for row in history]
        for choice, name in enumerate(choices):
            ax.plot(epochs, [weights[choice] for weights in series], label=name, linewidth=1.2)
        ax.set_title(f"{label}: {point}" if label not in point else point, fontsize="small")
        ax.set_ylim(0, 1)
        ax.tick_params(labelsize="x-small")
        if slot == 0:
            ax.legend(fontsize="xx-small", ncols=2)
    figure.suptitle("bnnzoo search: entropy, losses, accuracies and mixing weights per epoch")
    return figure


def plot_search_curves(history: list[dict[str, Any]], path: Path, arch: list[tuple[str, list[str], list[str]]]) -> Path:
    """Write :func:`search_figure` to ``path`` as a PNG, atomically."""
    figure = search_figure(history, arch)
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    return path
