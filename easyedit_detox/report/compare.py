"""`compare`: read results folders, check that they can be compared, and lay them side by side (Markdown, LaTeX,
CSV, plots, paired differences). Imports the standard library only, so that `compare` starts fast (plots import
matplotlib when called)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import check_output_path, write_atomically
from .comparability import Difference, check_comparable, refusal_message
from .summaries import PLOT_FORMATS, PLUS_MINUS, PathLike, load_summary
from .tables import comparison_markdown, csv_text, format_number, latex_table, markdown_row


def _load_runs(dirs: Union[PathLike, Sequence[PathLike]]) -> Tuple[List[str], List[Dict[str, Any]]]:
    """The folders (as labels) and their checked summaries."""
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    if not dirs:
        raise UserError("no results folder given; pass one or more folders written by "
                        "`easyedit-detox evaluate --out DIR`")
    labels = [os.path.normpath(os.fspath(d)) for d in dirs]
    return labels, [load_summary(d) for d in dirs]


def _checked(summaries, labels, force: bool) -> List[Difference]:
    """The differences between the runs; UserError listing them unless `force`."""
    differences = check_comparable(summaries, labels)
    if differences and not force:
        raise UserError(refusal_message(differences))
    return differences


def compare_table(dirs: Union[PathLike, Sequence[PathLike]], force: bool = False) -> str:
    """The runs in `dirs` as Markdown: a facts line, a row per run with each metric "pre -> post", then each run's
    paired difference from the first on the cases both ran (when the folders hold their case lines)."""
    labels, summaries = _load_runs(dirs)
    differences = _checked(summaries, labels, force)
    return comparison_markdown(summaries, labels, differences) + paired_markdown(labels)


def paired_markdown(labels: Sequence[str]) -> str:
    """The paired-differences table (after a blank line), or "" when it cannot be computed."""
    from .paired import paired_rows

    rows = paired_rows(list(labels))
    if not rows:
        return ""
    lines = ["", "", f"Paired differences from {labels[0]} after the edit (post), on the cases both runs answered: "
             f"mean of (run - first) per case {PLUS_MINUS} standard error; cases where the run is better / worse / "
             "tied; p: two-sided exact sign test (ties dropped).", "",
             "| run | metric | n | difference | better / worse / tied | p |", "| --- | --- | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(markdown_row([r["run"], r["metric"], r["n"], format_number(r["mean"], error=r["stderr"]),
                           f"{r['better']} / {r['worse']} / {r['tied']}", f"{r['p']:.3g}"]))
    return "\n".join(lines)




def write_latex(summaries: Sequence[Mapping[str, Any]], path: PathLike) -> str:
    """Write the runs as a LaTeX `tabular` a paper can `\\input` (atomically); return the path."""
    path = check_output_path(path, "LaTeX table")
    write_atomically(path, latex_table(summaries))
    return path


def write_csv(summaries: Sequence[Mapping[str, Any]], path: PathLike) -> str:
    """Write the runs as CSV (atomically); return the path."""
    path = check_output_path(path, "CSV file")
    write_atomically(path, csv_text(summaries))
    return path


def sequential_path(plot: PathLike) -> str:
    """Where the sequential-editing curve goes next to the bar plot `plot`: `<stem>-sequential<ext>`."""
    stem, ext = os.path.splitext(os.fspath(plot))
    return f"{stem}-sequential{ext}"


def run_compare(dirs: Union[PathLike, Sequence[PathLike]], force: bool = False, latex: Optional[PathLike] = None,
                csv: Optional[PathLike] = None, plot: Optional[PathLike] = None) -> str:
    """The `compare` command: the Markdown comparison, plus the LaTeX, CSV and plot files asked for."""
    labels, summaries = _load_runs(dirs)
    differences = _checked(summaries, labels, force)
    # Every output path is checked before anything is written, so a typo leaves no half-set of files.
    targets = []
    if latex is not None:
        targets.append(("LaTeX table", check_output_path(latex, "LaTeX table")))
    if csv is not None:
        targets.append(("CSV", check_output_path(csv, "CSV file")))
    if plot is not None:
        targets.append(("bar plot", check_output_path(plot, "plot", PLOT_FORMATS)))
        if any(s.get("sequential") for s in summaries):
            targets.append(("sequential-editing plot", sequential_path(plot)))
    written = []
    for what, path in targets:
        if what == "LaTeX table":
            write_latex(summaries, path)
        elif what == "CSV":
            write_csv(summaries, path)
        else:
            from . import plots

            (plots.plot_bars if what == "bar plot" else plots.plot_sequential)(summaries, path)
        written.append(f"{what}: {path}")
    text = comparison_markdown(summaries, labels, differences) + paired_markdown(labels)
    return text + ("\n\nWrote " + "; ".join(written) + "." if written else "")

