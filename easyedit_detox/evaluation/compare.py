"""Read results folders' `summary.json` and lay their numbers side by side in Markdown.

The summary.json contract: at least ``{"method": str, "model": str, "judge": str, "n_cases": int,
"pre": {...}, "post": {...}}``, where `pre` (vanilla model) and `post` (edited model) each hold the
numbers DS, DG_onlyQ, DG_otherA, DG_otherQ, DG_otherAQ, DG_Avg and Fluency.
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Dict, Iterable, List, Sequence, Union

from easyedit_detox.errors import UserError
from easyedit_detox.evaluation.metrics import SUMMARY_KEYS

SUMMARY_FILE = "summary.json"
#: Metric columns of the comparison table, in order.
TABLE_METRICS = ("DS", "DG_Avg", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ", "Fluency")
_TEXT_FIELDS = ("method", "model", "judge")
_FIX = "run `easyedit-detox evaluate ... --out DIR` to write it again"


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def load_summary(directory: Union[str, os.PathLike]) -> Dict[str, Any]:
    """The summary.json of a results folder, checked against the contract (UserError if not)."""
    directory = os.fspath(directory)
    path = os.path.join(directory, SUMMARY_FILE)
    if not os.path.isdir(directory):
        raise UserError(f"results folder '{directory}' does not exist; pass a folder written by "
                        "`easyedit-detox evaluate --out DIR`")
    if not os.path.isfile(path):
        raise UserError(f"'{path}' does not exist: the run in '{directory}' has not finished; "
                        f"{_FIX} (a run resumes where it stopped)")
    try:
        with open(path, encoding="utf-8") as f:
            summary = json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"'{path}' is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                        f"{_FIX}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"'{path}' cannot be read ({e}); {_FIX}") from None
    if not isinstance(summary, dict):
        raise UserError(f"'{path}' must hold a JSON object, not {type(summary).__name__}; {_FIX}")
    for key in _TEXT_FIELDS:
        if not isinstance(summary.get(key), str):
            raise UserError(f"'{path}': field '{key}' must be a string; {_FIX}")
    n_cases = summary.get("n_cases")
    if isinstance(n_cases, bool) or not isinstance(n_cases, int) or n_cases < 0:
        raise UserError(f"'{path}': field 'n_cases' must be a whole number; {_FIX}")
    for side in ("pre", "post"):
        numbers_ = summary.get(side)
        if not isinstance(numbers_, dict):
            raise UserError(f"'{path}': field '{side}' must be an object of metric numbers; {_FIX}")
        for key in SUMMARY_KEYS:
            if not _is_number(numbers_.get(key)):
                raise UserError(f"'{path}': field '{side}.{key}' must be a number; {_FIX}")
    return summary


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def compare_table(dirs: Sequence[Union[str, os.PathLike]]) -> str:
    """One Markdown table of the runs in `dirs`: a row per run, each metric cell "pre -> post"."""
    if isinstance(dirs, (str, os.PathLike)):
        dirs = [dirs]
    if not dirs:
        raise UserError("no results folder given; pass one or more folders written by "
                        "`easyedit-detox evaluate --out DIR`")
    summaries = [(os.path.normpath(os.fspath(d)), load_summary(d)) for d in dirs]
    header = ["run", "method", "model", "judge", "n_cases", *TABLE_METRICS]
    lines: List[str] = [
        _row(header),
        "| " + " | ".join(["---"] * 5 + ["---:"] * len(TABLE_METRICS)) + " |",
    ]
    for directory, s in summaries:
        metrics = [f"{s['pre'][k]:.2f} -> {s['post'][k]:.2f}" for k in TABLE_METRICS]
        lines.append(_row([directory, s["method"], s["model"], s["judge"], s["n_cases"], *metrics]))
    lines.append("")
    lines.append("Each metric cell: vanilla model (pre) -> edited model (post). DS and DG_* are "
                 "defense success rates in % (higher is safer); Fluency is n-gram entropy.")
    return "\n".join(lines)


def summary_markdown(summary: Dict[str, Any]) -> str:
    """One run's summary as a Markdown table: a row per metric, columns pre, post and change."""
    lines = [
        f"method: {summary['method']} | model: {summary['model']} | judge: {summary['judge']} "
        f"| cases: {summary['n_cases']}",
        "",
        "| metric | pre | post | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key in TABLE_METRICS:
        pre, post = summary["pre"][key], summary["post"][key]
        lines.append(f"| {key} | {pre:.2f} | {post:.2f} | {post - pre:+.2f} |")
    return "\n".join(lines)
