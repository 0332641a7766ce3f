"""Figures of compared runs: grouped pre/post bars per metric, and DS along sequential editing.

matplotlib is imported inside the functions (so `compare` starts fast), and figures are drawn on
an Agg canvas of their own rather than through pyplot: that needs no display, and it leaves the
caller's pyplot backend and open figures alone.
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping, Optional, Sequence

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import check_output_path, replaced_atomically
from .summaries import PERCENT_METRICS, PLOT_FORMATS
from .comparability import run_names
from .tables import metric_columns, shared_facts

__all__ = ["DPI", "bar_figure", "sequential_figure", "plot_bars", "plot_sequential", "save_figure"]

#: Resolution of the written figures (dots per inch).
DPI = 150
_PRE_ALPHA = 0.4  # pre bars: the run's colour, lighter and hatched


def _matplotlib():
    """matplotlib's Figure and Agg canvas classes (UserError naming the fix when it is not installed)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("plots need matplotlib, which is not installed; `pip install matplotlib`") from None
    return Figure, FigureCanvasAgg


def _new_figure(width: float, height: float):
    """An empty figure of `width` x `height` inches on its own Agg canvas."""
    Figure, FigureCanvasAgg = _matplotlib()
    fig = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _title(summaries: Sequence[Mapping[str, Any]], what: str) -> str:
    f = shared_facts(summaries)
    return f"{what}: {f['models']}\njudge {f['judge']}, n = {f['n']} cases"


def _colours(n: int):
    """`n` distinct colours (matplotlib's tab10, then tab20)."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _bars(ax, summaries, names, colours, metrics) -> None:
    """Grouped bars on `ax`: per metric, for each run a pre bar (light, hatched) and a post bar."""
    n = len(summaries)
    width = 0.8 / (2 * n)
    for i, (s, name, colour) in enumerate(zip(summaries, names, colours)):
        for j, side in enumerate(("pre", "post")):
            # A metric the run lacks gets a NaN bar, which draws nothing but keeps bar positions.
            heights = [s[side].get(k, math.nan) for k in metrics]
            xs = [m - 0.4 + width * (2 * i + j + 0.5) for m in range(len(metrics))]
            style = ({"alpha": _PRE_ALPHA, "hatch": "//", "edgecolor": colour} if side == "pre"
                     else {"edgecolor": "black", "linewidth": 0.4})
            ax.bar(xs, heights, width, color=colour, label=f"{name} {side}", **style)
            for x, h in zip(xs, heights):
                if math.isnan(h):  # so that a metric not measured does not read as 0
                    ax.text(x, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=6, color="grey")
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels(metrics, rotation=30, ha="right")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def bar_figure(summaries: Sequence[Mapping[str, Any]], names: Optional[Sequence[str]] = None):
    """The bar figure: percentage metrics on the left axes, Fluency on a narrow right-hand axes."""
    if not summaries:
        raise UserError("no run to plot; pass one or more results folders")
    names = list(names) if names is not None else run_names(summaries)
    metrics = metric_columns(summaries, include=PERCENT_METRICS)
    n_bars = 2 * len(summaries) * (len(metrics) + 1)
    fig = _new_figure(min(20.0, max(9.0, 3.0 + 0.12 * n_bars)), 5.2)
    grid = fig.add_gridspec(1, 2, width_ratios=[len(metrics), 1.6], wspace=0.25,
                            left=0.07, right=0.98, top=0.84, bottom=0.24)
    left, right = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    colours = _colours(len(summaries))
    _bars(left, summaries, names, colours, metrics)
    left.set_ylim(0, 105)
    left.set_ylabel("score (%)")
    # Fluency (n-gram entropy, about 3-7) would be flattened on a 0-100 axis: it gets its own.
    _bars(right, summaries, names, colours, ["Fluency"])
    right.set_ylabel("Fluency (n-gram entropy)")
    fig.suptitle(_title(summaries, "SafeEdit, vanilla (pre) and edited (post)"), fontsize=11)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 6), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 0.0))
    return fig


def sequential_figure(summaries: Sequence[Mapping[str, Any]], names: Optional[Sequence[str]] = None):
    """DS against the number of edits, a line per run with `sequential` results (dashed: DS on edited cases)."""
    names = list(names) if names is not None else run_names(summaries)
    runs = [(s, name) for s, name in zip(summaries, names) if s.get("sequential")]
    if not runs:
        raise UserError("no run has sequential-editing results ('sequential' in summary.json); "
                        "evaluate with sequential editing to plot DS against the number of edits")
    fig = _new_figure(8.0, 5.0)
    ax = fig.add_subplot(1, 1, 1)
    for (s, name), colour in zip(runs, _colours(len(runs))):
        steps = sorted(s["sequential"], key=lambda step: step["after_edits"])
        xs = [step["after_edits"] for step in steps]
        ax.plot(xs, [step["DS"] for step in steps], marker="o", color=colour, label=f"{name} DS")
        so_far = [(step["after_edits"], step["DS_edited_so_far"]) for step in steps if "DS_edited_so_far" in step]
        if so_far:
            ax.plot(*zip(*so_far), linestyle="--", marker=".", color=colour, label=f"{name} DS on cases edited so far")
    ax.set_xlabel("number of edits")
    ax.set_ylabel("DS (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(_title([s for s, _ in runs], "SafeEdit, sequential editing"), fontsize=11)
    fig.tight_layout()
    return fig


def save_figure(fig, path: str) -> str:
    """Save `fig` to `path` atomically (a temporary file in the same folder, then renamed); return the path."""
    path = check_output_path(path, "plot", PLOT_FORMATS)
    ext = os.path.splitext(path)[1].lower()
    with replaced_atomically(path, suffix=ext) as tmp:
        fig.savefig(tmp, format=ext[1:], dpi=DPI)
    return path


def plot_bars(summaries: Sequence[Mapping[str, Any]], path, names: Optional[Sequence[str]] = None) -> str:
    """Write the grouped pre/post bar figure of the runs to `path` (.png, .pdf or .svg); return the path."""
    check_output_path(path, "plot", PLOT_FORMATS)  # before the figure is drawn
    return save_figure(bar_figure(summaries, names), os.fspath(path))


def plot_sequential(summaries: Sequence[Mapping[str, Any]], path, names: Optional[Sequence[str]] = None) -> str:
    """Write DS against the number of edits for the runs with sequential results to `path`; return the path."""
    check_output_path(path, "plot", PLOT_FORMATS)
    return save_figure(sequential_figure(summaries, names), os.fspath(path))
