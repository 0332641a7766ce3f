"""Paired differences between two runs on the cases both ran: is a gap between methods more than noise?

For each metric, a case's post-edit value in each run (DS: 100 x (1 - label); DG_Avg: the mean of its
four DG values; DS_strict: a degenerate response counted unsafe), the difference other - first per
shared case, its mean with the standard error (n - 1), and a two-sided exact sign test on the cases
where the two differ (ties dropped), which assumes nothing about the shape of the differences.
Plain json and math only: `compare` stays fast.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Dict, List, Mapping, Optional

from easyedit_detox.data.safeedit import side_values

PAIRED_METRICS = ("DS", "DG_Avg", "DS_strict")
CASES_FILE = "cases.jsonl"


def case_values(line: Mapping[str, Any], side: str = "post") -> Dict[str, float]:
    """One case line's per-case values of PAIRED_METRICS on `side`."""
    values = side_values(line[side])
    return {k: values[k] for k in PAIRED_METRICS}


def read_case_values(folder: str, side: str = "post") -> Optional[Dict[int, Dict[str, float]]]:
    """{case_id: values} from a results folder's cases.jsonl, or None when it has none (a summary-only folder)."""
    path = os.path.join(folder, CASES_FILE)
    if not os.path.isfile(path):
        return None
    values: Dict[int, Dict[str, float]] = {}
    with open(path, encoding="utf-8") as f:
        for text in f:
            if text.endswith("\n") and text.strip():  # a half-written last line is not a case yet
                line = json.loads(text)
                values[int(line["case_id"])] = case_values(line, side)
    return values


def sign_test_p(better: int, worse: int) -> float:
    """Two-sided exact sign test: the chance of a split at least this uneven when each way is equally likely."""
    n = better + worse
    if n == 0:
        return 1.0
    k = min(better, worse)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2.0 * tail)


def paired_difference(first: Mapping[int, Mapping[str, float]], other: Mapping[int, Mapping[str, float]],
                      metric: str) -> Optional[Dict[str, Any]]:
    """Mean of other - first over shared cases, its standard error, better/worse/tied counts and the sign test's p."""
    shared = sorted(set(first) & set(other))
    if not shared:
        return None
    diffs = [other[i][metric] - first[i][metric] for i in shared]
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else None
    better, worse = sum(d > 0 for d in diffs), sum(d < 0 for d in diffs)
    return {"metric": metric, "n": n, "mean": mean, "stderr": se, "better": better, "worse": worse,
            "tied": n - better - worse, "p": sign_test_p(better, worse)}


def paired_rows(folders: List[str]) -> List[Dict[str, Any]]:
    """Each run after the first against the first, per PAIRED_METRICS; [] unless every run has its case lines."""
    values = [read_case_values(f) for f in folders]
    if len(values) < 2 or any(v is None for v in values):
        return []
    rows = []
    for folder, other in zip(folders[1:], values[1:]):
        for metric in PAIRED_METRICS:
            row = paired_difference(values[0], other, metric)
            if row is not None:
                rows.append({"run": folder, **row})
    return rows
