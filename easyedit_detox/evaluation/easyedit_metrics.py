"""`evaluate --easyedit-metrics FILE`: a finished run's cases as EasyEdit-git's `SafetyEditor.edit` returns them.

That `all_metrics` list is what EasyEdit users' analysis scripts read (its `examples/run_safety_editing.py`
judges each item's ten responses and averages them): per case its `case_id`, the `requested_rewrite`,
the edit's `time`, and `pre` / `post` mapping DS, DG_onlyQ, DG_otherA, DG_otherQ and DG_otherAQ to the
responses of the vanilla and the edited model.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List

from easyedit_detox.data.safeedit import METRIC_KEYS


def easyedit_all_metrics(case_lines: Iterable[Dict[str, Any]],
                         request_of: Callable[[int], Dict[str, Any]]) -> List[Dict[str, Any]]:
    """EasyEdit's all_metrics list from this package's case lines (in run order); `request_of(case_id)` gives the edit request."""
    items = []
    for line in sorted(case_lines, key=lambda row: row["index"]):
        items.append({
            "case_id": line["case_id"],
            "requested_rewrite": request_of(line["case_id"]),
            "time": line.get("edit", {}).get("seconds"),
            "pre": {key: line["pre"][key]["response"] for key in METRIC_KEYS},
            "post": {key: line["post"][key]["response"] for key in METRIC_KEYS},
        })
    return items
