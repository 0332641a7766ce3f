"""`easyedit-detox rejudge RUN --judge SPEC --out NEW`: a finished run's responses judged again, nothing generated.

NEW is a results folder of its own: the same case lines with the new judge's labels (inputs, responses,
degeneration flags and Fluency as they were), the general probes' lines as they were (their scorers and the
refusal detector do not read the safety judge), run.json and summary.json recomputed from the lines with the
judge named, and `agreement.json`: for each metric, how often the two judges gave the same label (0 safe,
0.5 empty, 1 unsafe) and Cohen's kappa, the agreement beyond what their label rates alone would give.
RUN is only read. `compare RUN NEW --force` then puts the two judges side by side.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

from easyedit_detox.core.errors import UserError
from easyedit_detox.data.safeedit import METRIC_KEYS
from .results import CASES_FILE, GENERAL_FILE, RUN_FILE, ResultsFolder, read_lines, write_text
from .tally import GeneralTally, SafeEditTally

AGREEMENT_FILE = "agreement.json"
SIDES = ("pre", "post")


def cohen_kappa(first: Sequence[float], second: Sequence[float]) -> Optional[float]:
    """Cohen's kappa of two label lists over the categories they use; None when chance agreement is certain."""
    n = len(first)
    if n == 0:
        return None
    observed = sum(a == b for a, b in zip(first, second)) / n
    rates_a, rates_b = Counter(first), Counter(second)
    expected = sum(rates_a[c] * rates_b[c] for c in set(rates_a) | set(rates_b)) / (n * n)
    if expected >= 1.0:
        return None  # both judges gave one and the same label throughout: kappa is undefined
    return (observed - expected) / (1.0 - expected)


def agreement(old_lines: Sequence[Dict[str, Any]], new_lines: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Per metric (both sides pooled) and over all responses: n, percent agreement and Cohen's kappa."""
    rows = []
    for key in list(METRIC_KEYS) + ["all"]:
        keys = METRIC_KEYS if key == "all" else (key,)
        a = [line[side][k]["label"] for line in old_lines for side in SIDES for k in keys]
        b = [line[side][k]["label"] for line in new_lines for side in SIDES for k in keys]
        same = sum(x == y for x, y in zip(a, b))
        rows.append({"metric": key, "n": len(a), "agreement": 100.0 * same / len(a) if a else None,
                     "kappa": cohen_kappa(a, b)})
    return rows


def _relabel(line: Dict[str, Any], judge, judge_name: str) -> Dict[str, Any]:
    new = json.loads(json.dumps(line))
    new["judge"] = judge_name
    for side in SIDES:
        entries = [new[side][k] for k in METRIC_KEYS]
        labels = judge([e["response"] for e in entries], requests=[e.get("request", e["input"]) for e in entries])
        for k, label in zip(METRIC_KEYS, labels):
            new[side][k]["label"] = label
    return new


def rejudge(run_dir: str, judge_spec, out_dir: str) -> Dict[str, Any]:
    """Judge RUN's responses again into OUT (a new folder); returns {"summary": ..., "agreement": [...]}."""
    from easyedit_detox.report.summaries import load_summary
    from .judges import get_judge
    from .probes import GENERAL_PROBES

    run_dir, out_dir = os.path.abspath(run_dir), os.path.abspath(out_dir)
    if run_dir == out_dir:
        raise UserError("rejudge writes a new folder and leaves RUN as it is; pass another --out")
    if os.path.exists(out_dir):
        raise UserError(f"--out {out_dir!r} exists; rejudge writes a new results folder, pass a path that does not "
                        "exist yet")
    summary = load_summary(run_dir)
    old_lines = read_lines(os.path.join(run_dir, CASES_FILE))
    if not old_lines or "sequential" in summary:
        raise UserError(f"{run_dir!r} holds no per-case lines to judge again (rejudge reads cases.jsonl of a "
                        "per-case run)")
    try:
        with open(os.path.join(run_dir, RUN_FILE), encoding="utf-8") as f:
            run_info = json.load(f)
    except (OSError, ValueError):
        raise UserError(f"{run_dir!r} has no readable run.json; it is not a results folder of `evaluate`") from None
    judge = get_judge(judge_spec)
    started = time.perf_counter()
    new_lines = [_relabel(line, judge, judge.name) for line in old_lines]
    seconds = time.perf_counter() - started

    folder = ResultsFolder(out_dir, {**run_info, "judge": judge.name, "rejudged_from": run_dir})
    folder.append(CASES_FILE, new_lines)
    general_lines = read_lines(os.path.join(run_dir, GENERAL_FILE))
    if general_lines:
        folder.append(GENERAL_FILE, general_lines)
    tally = SafeEditTally()
    for line in new_lines:
        tally.add(line)
    general = GeneralTally({cls.name: cls.summary_key for cls in GENERAL_PROBES.values()})
    for line in general_lines:
        general.add(line)
    new_summary = {k: v for k, v in summary.items() if k not in ("pre", "post", "time")}
    new_summary.update(tally.summary())
    extra = general.summary()
    for side in SIDES:
        new_summary[side].update(extra[side])
    new_summary.update(judge=judge.name, rejudged_from=run_dir,
                       time={"seconds": {"judge": round(seconds, 3)}, "total_seconds": round(seconds, 3),
                             "seconds_per_case": round(seconds / len(new_lines), 3)})
    rows = agreement(old_lines, new_lines)
    from easyedit_detox.report.tables import summary_markdown

    folder.write_summary(new_summary, f"# SafeEdit, judged again by `{judge.name}`\n\nResponses of `{run_dir}` "
                                      f"(judged there by `{summary['judge']}`); nothing generated.\n\n"
                                      + summary_markdown(new_summary))
    write_text(os.path.join(out_dir, AGREEMENT_FILE),
               json.dumps({"old_judge": summary["judge"], "new_judge": judge.name, "metrics": rows}, indent=2) + "\n")
    return {"summary": new_summary, "agreement": rows, "old_judge": summary["judge"]}


def agreement_markdown(result: Dict[str, Any]) -> str:
    """The agreement table of a rejudge, for people."""
    lines = [f"agreement of `{result['old_judge']}` and `{result['summary']['judge']}` on the same responses "
             "(labels 0 safe, 0.5 empty, 1 unsafe; pre and post pooled)", "",
             "| metric | responses | agreement % | Cohen's kappa |", "| --- | ---: | ---: | ---: |"]
    for r in result["agreement"]:
        kappa = "undefined" if r["kappa"] is None else f"{r['kappa']:.3f}"
        lines.append(f"| {r['metric']} | {r['n']} | {r['agreement']:.2f} | {kappa} |")
    return "\n".join(lines)
