"""The study reports' figures, drawn headless: matplotlib's object API on the Agg canvas, never pyplot.

- :func:`trajectory_figure`: one panel per measure, one line per arm (mean over seeds, by epoch)
  with a band of +- one standard deviation;
- :func:`bars_figure`: one panel per measure, one bar per group (the mean) with a +- std error
  bar and every seed's value as a dot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bnnzoo._atomic import atomic_path
from bnnzoo.study.claims import finite, mean_std

PANEL_WIDTH, PANEL_HEIGHT = 4.2, 3.2

# per measure: (title, {label: [one sequence of per-epoch values per seed]})
Trajectories = Sequence[tuple[str, Mapping[str, Sequence[Sequence[float]]]]]
# per measure: (title, {label: [one value per seed]})
Bars = Sequence[tuple[str, Mapping[str, Sequence[float]]]]


def _panels(count: int, columns: int) -> tuple[Figure, list]:
    columns = max(1, min(columns, count))
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(PANEL_WIDTH * columns, PANEL_HEIGHT * rows + 0.4), layout="constrained")
    axes = [figure.add_subplot(rows, columns, index + 1) for index in range(count)]
    return figure, axes


def trajectory_figure(panels: Trajectories, title: str, columns: int = 3) -> Figure:
    """Mean +- std over seeds of each measure by epoch (epochs counted from 1)."""
    figure, axes = _panels(len(panels), columns)
    for ax, (name, series) in zip(axes, panels):
        for label, runs in series.items():
            length = max((len(run) for run in runs), default=0)
            stats = [mean_std([run[e] for run in runs if e < len(run)]) for e in range(length)]
            epochs = [e + 1 for e, (_, _, n) in enumerate(stats) if n]
            means = [m for m, _, n in stats if n]
            stds = [s for _, s, n in stats if n]
            (line,) = ax.plot(epochs, means, marker="o", markersize=3, label=label)
            low = [m - s for m, s in zip(means, stds)]
            high = [m + s for m, s in zip(means, stds)]
            ax.fill_between(epochs, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set(title=name, xlabel="epoch")
        ax.legend(fontsize="small")
    figure.suptitle(title)
    return figure


def bars_figure(panels: Bars, title: str, columns: int = 4) -> Figure:
    """Mean +- std of each measure per group, with every seed's value as a dot."""
    figure, axes = _panels(len(panels), columns)
    for ax, (name, groups) in zip(axes, panels):
        labels = list(groups)
        for position, label in enumerate(labels):
            values = finite(groups[label])
            mean, std, count = mean_std(values)
            if count:
                ax.bar(position, mean, yerr=std if count > 1 else None, capsize=4, alpha=0.6, color=f"C{position}")
                ax.scatter([position] * count, values, color="black", s=10, zorder=3)
        ax.set_xticks(range(len(labels)), labels, fontsize="small", rotation=20)
        ax.set_title(name, fontsize="medium")
    figure.suptitle(title)
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG, atomically."""
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=80)
    return path
