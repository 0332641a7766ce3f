"""The summary.json contract: what `evaluate` writes and `compare` reads, checked on reading.

The summary.json contract (what the evaluation writes; a metric that did not run is absent, never 0):

- required: ``method``, ``model``, ``judge`` (strings), ``n_cases`` (a whole number), and ``pre``
  (vanilla model) / ``post`` (edited model), each an object of finite numbers holding at least DS,
  DG_onlyQ, DG_otherA, DG_otherQ, DG_otherAQ, DG_Avg and Fluency; any further entry (KQA, CSum,
  OverRefusal, Degenerate, DS_strict, DG_Avg_strict, ...) must be a finite number too;
- required to compare runs, but absent from older summaries (then "unknown", which never matches):
  ``data_sha256`` (string), ``case_ids`` (list of whole numbers), ``generation`` (object);
- optional: ``data`` (path), ``sequential`` (a list of ``{"after_edits": int, "DS": number, ...}``).
"""

from __future__ import annotations

import json
import math
import numbers
import os
from typing import Any, Dict, Mapping, Tuple, Union

from easyedit_detox.core.errors import UserError
from easyedit_detox.data.safeedit import SUMMARY_KEYS

PathLike = Union[str, os.PathLike]

SUMMARY_FILE = "summary.json"
#: The metrics every summary side holds, in column order: DS, the four DGs, DG_Avg, Fluency.
TABLE_METRICS: Tuple[str, ...] = tuple(SUMMARY_KEYS)
#: Optional metrics, in column order; any other metric follows them alphabetically.
KNOWN_EXTRA_METRICS = ("KQA", "CSum", "OverRefusal", "Degenerate", "DS_strict", "DG_Avg_strict")
#: Metrics on a 0-100 scale, which the bar plot sets side by side (Fluency is n-gram entropy).
PERCENT_METRICS = tuple(k for k in TABLE_METRICS if k != "Fluency") + KNOWN_EXTRA_METRICS
#: The fields runs must share to be compared.
COMPARED_FIELDS = ("data_sha256", "judge", "prompt_format", "protocol", "generation", "case_ids")
#: `generation` entries that change how fast responses come, not which: ignored by the check.
GENERATION_KEYS_NOT_AFFECTING_RESPONSES = frozenset({"batch_size", "cases_per_batch"})

UNKNOWN = "unknown"
MISSING = "–"  # a metric a run lacks, in Markdown
ARROW = "->"
PLUS_MINUS = "±"
STDERR_SUFFIX = "_stderr"  # as tally.py writes them (not imported: compare stays free of the evaluation's imports)
SIDES = ("pre", "post")
_TEXT_FIELDS = ("method", "model", "judge")
_FIX = "run `easyedit-detox evaluate ... --out DIR` to write it again"
FORCE_HINT = "pass --force to set them side by side anyway"
#: The figure formats plots write, chosen by the file name's suffix.
PLOT_FORMATS = (".png", ".pdf", ".svg")


# -- reading and checking the contract -------------------------------------------------------

def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _read_json(directory: str, path: str) -> Any:
    """The JSON value in `path`, or UserError naming the file and the fix."""
    if not os.path.isdir(directory):
        raise UserError(f"results folder '{directory}' does not exist; pass a folder written by "
                        "`easyedit-detox evaluate --out DIR`")
    if not os.path.isfile(path):
        raise UserError(f"'{path}' does not exist: the run in '{directory}' has not finished; "
                        f"{_FIX} (a run resumes where it stopped)")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise UserError(f"'{path}' is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno}); "
                        f"{_FIX}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"'{path}' cannot be read ({e}); {_FIX}") from None


def _check_side(path: str, side: str, block: Any) -> None:
    """UserError unless `block` is an object of finite numbers holding every table metric."""
    if not isinstance(block, dict):
        raise UserError(f"'{path}': field '{side}' must be an object of metric numbers; {_FIX}")
    for key in TABLE_METRICS:
        if not _is_number(block.get(key)):
            raise UserError(f"'{path}': field '{side}.{key}' must be a number; {_FIX}")
    for key, value in block.items():
        if not _is_number(value):
            # A metric that did not run is left out, so a null or text here is a broken writer.
            raise UserError(f"'{path}': field '{side}.{key}' must be a number (leave out a metric that "
                            f"did not run); {_FIX}")


def _check_comparison_fields(path: str, summary: Mapping[str, Any]) -> None:
    """UserError if a field used to compare runs is present with the wrong type."""
    if "data_sha256" in summary and not isinstance(summary["data_sha256"], str):
        raise UserError(f"'{path}': field 'data_sha256' must be a string; {_FIX}")
    if "case_ids" in summary:
        ids = summary["case_ids"]
        if not isinstance(ids, list) or not all(_is_whole(i) for i in ids):
            raise UserError(f"'{path}': field 'case_ids' must be a list of whole numbers; {_FIX}")
    if "generation" in summary and not isinstance(summary["generation"], dict):
        raise UserError(f"'{path}': field 'generation' must be an object of generation settings; {_FIX}")
    if "data" in summary and not isinstance(summary["data"], str):
        raise UserError(f"'{path}': field 'data' must be a string (the data file's path); {_FIX}")


def _check_sequential(path: str, steps: Any) -> None:
    """UserError unless `steps` is a list of objects with whole `after_edits` and numbers."""
    if not isinstance(steps, list):
        raise UserError(f"'{path}': field 'sequential' must be a list of objects; {_FIX}")
    for i, step in enumerate(steps):
        if not isinstance(step, dict):
            raise UserError(f"'{path}': field 'sequential[{i}]' must be an object; {_FIX}")
        if not _is_whole(step.get("after_edits")):
            raise UserError(f"'{path}': field 'sequential[{i}].after_edits' must be a whole number; {_FIX}")
        for key in ("DS", "DS_edited_so_far"):
            if (key == "DS" or key in step) and not _is_number(step.get(key)):
                raise UserError(f"'{path}': field 'sequential[{i}].{key}' must be a number; {_FIX}")


def load_summary(directory: PathLike) -> Dict[str, Any]:
    """The summary.json of a results folder, checked against the contract (UserError if not)."""
    directory = os.fspath(directory)
    path = os.path.join(directory, SUMMARY_FILE)
    summary = _read_json(directory, path)
    if not isinstance(summary, dict):
        raise UserError(f"'{path}' must hold a JSON object, not {type(summary).__name__}; {_FIX}")
    for key in _TEXT_FIELDS:
        if not isinstance(summary.get(key), str):
            raise UserError(f"'{path}': field '{key}' must be a string; {_FIX}")
    n_cases = summary.get("n_cases")
    if not _is_whole(n_cases) or n_cases < 0:
        raise UserError(f"'{path}': field 'n_cases' must be a whole number; {_FIX}")
    for side in SIDES:
        _check_side(path, side, summary.get(side))
    _check_comparison_fields(path, summary)
    if "sequential" in summary:
        _check_sequential(path, summary["sequential"])
    return summary


