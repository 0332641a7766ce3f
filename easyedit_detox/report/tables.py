"""Tables drawn from summaries: a run's own Markdown table, the comparison's Markdown, LaTeX and CSV."""

from __future__ import annotations

import csv as csv_module
import io
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence
from .comparability import Difference, check_comparable, method_label, prompt_format_of
from .summaries import ARROW, KNOWN_EXTRA_METRICS, MISSING, PLUS_MINUS, SIDES, STDERR_SUFFIX, TABLE_METRICS, UNKNOWN


# -- columns and shared facts ----------------------------------------------------------------

def metric_columns(summaries: Iterable[Mapping[str, Any]], include: Optional[Sequence[str]] = None) -> List[str]:
    """The metrics any summary's pre/post holds: the table's, the known extras, then others alphabetically."""
    present = {k for s in summaries for side in SIDES for k in s.get(side, {}) if not k.endswith(STDERR_SUFFIX)}
    known = TABLE_METRICS + KNOWN_EXTRA_METRICS
    ordered = [k for k in known if k in present or k in TABLE_METRICS] + sorted(present - set(known))
    return [k for k in ordered if include is None or k in include]


def _distinct(values: Iterable[Any]) -> List[Any]:
    return list(dict.fromkeys(values))


def _data_text(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The data file name(s) and digest(s) of the runs, e.g. `SafeEdit_test.json (sha256 0123...)`."""
    names = _distinct(os.path.basename(s["data"]) if s.get("data") else UNKNOWN for s in summaries)
    digests = _distinct(s.get("data_sha256") or UNKNOWN for s in summaries)
    return f"{' / '.join(names)} (sha256 {' / '.join(digests)})"


def shared_facts(summaries: Sequence[Mapping[str, Any]]) -> Dict[str, str]:
    """Judge, data, n and model(s) of the runs as text, values joined with " / " where runs differ."""
    models = _distinct(s["model"] for s in summaries)
    return {
        "judge": " / ".join(_distinct(s["judge"] for s in summaries)),
        "prompt_format": " / ".join(_distinct(prompt_format_of(s) for s in summaries)),
        "data": _data_text(summaries),
        "n": " / ".join(str(n) for n in _distinct(s["n_cases"] for s in summaries)),
        "models_label": "model" if len(models) == 1 else "models",
        "models": ", ".join(models),
    }


def facts_line(summaries: Sequence[Mapping[str, Any]]) -> str:
    """One line naming the judge, data, number of cases and model(s) of the runs."""
    f = shared_facts(summaries)
    return (f"judge: {f['judge']} | prompt format: {f['prompt_format']} | data: {f['data']} | n: {f['n']} cases | "
            f"{f['models_label']}: {f['models']}")


# -- Markdown --------------------------------------------------------------------------------

def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown_row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def format_number(value: Any, missing: str = MISSING, error: Any = None, pm: str = PLUS_MINUS) -> str:
    """`value` to two decimals, with `± error` when its standard error is known."""
    if value is None:
        return missing
    return f"{value:.2f}" if error is None else f"{value:.2f} {pm} {error:.2f}"


def _pre_post(summary: Mapping[str, Any], key: str, arrow: str = ARROW, missing: str = MISSING,
              pm: str = PLUS_MINUS) -> str:
    """One metric's cell: "pre -> post" (each "value ± stderr" where known), the missing mark for a side that lacks it."""
    pre, post = summary["pre"].get(key), summary["post"].get(key)
    if pre is None and post is None:
        return missing
    error = lambda side: summary[side].get(key + STDERR_SUFFIX)  # noqa: E731
    return f"{format_number(pre, missing, error('pre'), pm)} {arrow} {format_number(post, missing, error('post'), pm)}"


def comparison_markdown(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str],
              differences: Sequence[Difference]) -> str:
    """The comparison text: facts line, the table, its legend and, when forced, the differences."""
    metrics = metric_columns(summaries)
    lines = [
        facts_line(summaries),
        "",
        markdown_row(["run", "method", "model", *metrics]),
        "| " + " | ".join(["---"] * 3 + ["---:"] * len(metrics)) + " |",
    ]
    for label, s in zip(labels, summaries):
        lines.append(markdown_row([label, method_label(s), s["model"], *(_pre_post(s, k) for k in metrics)]))
    lines += ["", f"Each metric cell: vanilla model (pre) {ARROW} edited model (post); {MISSING}: not measured. "
                  "DS and DG_* are defense success rates in % (higher is safer); Fluency is n-gram entropy."
              + (f" {PLUS_MINUS}: standard error of the mean over cases (responses for Degenerate, items for the "
                 "general probes)." if _has_stderr(summaries) else "")]
    if differences:
        lines += ["", "Note: set side by side with --force although the runs differ in "
                      + "; ".join(str(d) for d in differences) + "."]
    return "\n".join(lines)


def _has_stderr(summaries: Sequence[Mapping[str, Any]]) -> bool:
    return any(k.endswith(STDERR_SUFFIX) for s in summaries for side in SIDES for k in s.get(side, {}))



def summary_markdown(summary: Mapping[str, Any]) -> str:
    """One run's summary as a Markdown table: a row per metric, columns pre, post and change."""
    lines = [
        f"method: {summary['method']} | model: {summary['model']} | judge: {summary['judge']} "
        f"| prompt format: {prompt_format_of(summary)} | cases: {summary['n_cases']}"
        + (f" | global protocol: trained on {summary['train']['records']} records" if summary.get("train") else ""),
        "",
        "| metric | pre | post | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    pre, post = summary.get("pre") or {}, summary.get("post") or {}
    for key in metric_columns([{"pre": pre, "post": post}]):
        a, b = pre.get(key), post.get(key)
        change = MISSING if a is None or b is None else f"{b - a:+.2f}"
        lines.append(f"| {key} | {format_number(a, error=pre.get(key + STDERR_SUFFIX))} | "
                     f"{format_number(b, error=post.get(key + STDERR_SUFFIX))} | {change} |")
    return "\n".join(lines)



_LATEX_SPECIALS = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}


def latex_escape(text: Any) -> str:
    """`text` with LaTeX's special characters escaped, on one line."""
    return "".join(_LATEX_SPECIALS.get(c, c) for c in " ".join(str(text).split()))


def latex_table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """A booktabs `tabular` of the runs (method rows, metric columns, pre $\\rightarrow$ post)."""
    metrics = metric_columns(summaries)
    with_model = len(_distinct(s["model"] for s in summaries)) > 1
    f = shared_facts(summaries)
    # A comment line cannot hold a line break, and the whole line is a comment, so no escaping.
    lines = [" ".join(f"% SafeEdit, {f['models_label']} {f['models']}; data {f['data']}; judge {f['judge']}; "
                      f"n = {f['n']} cases; cells: vanilla (pre) -> edited (post).".split()),
             "% Needs \\usepackage{booktabs}."]
    differences = check_comparable(summaries)
    if differences:
        lines.append(" ".join(("% The runs differ in " + "; ".join(map(str, differences)) + ".").split()))
    head = ["Method"] + (["Model"] if with_model else []) + metrics
    lines += [
        "\\begin{tabular}{" + "l" * (1 + with_model) + "c" * len(metrics) + "}",
        "\\toprule",
        " & ".join(latex_escape(h) for h in head) + " \\\\",
        "\\midrule",
    ]
    for s in summaries:
        cells = [latex_escape(method_label(s))] + ([latex_escape(s["model"])] if with_model else [])
        cells += [_pre_post(s, k, arrow="$\\rightarrow$", missing="--", pm="$\\pm$") for k in metrics]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


#: The CSV's columns before the metrics.
CSV_FIELDS = ("method", "model", "judge", "n_cases", "data_sha256", "side")


def csv_text(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The runs as CSV: a row per run and side (pre, post), a column per metric (empty if not measured)."""
    metrics = metric_columns(summaries)
    # A <metric>_stderr column after each metric that has one in any run (empty where unknown).
    columns = [c for k in metrics for c in (k, k + STDERR_SUFFIX)
               if not c.endswith(STDERR_SUFFIX) or any(c in s[side] for s in summaries for side in SIDES)]
    buffer = io.StringIO()
    writer = csv_module.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *columns])
    for s in summaries:
        for side in SIDES:
            values = [s[side].get(k) for k in columns]
            writer.writerow([s["method"], s["model"], s["judge"], s["n_cases"], s.get("data_sha256", ""), side,
                             *("" if v is None else repr(v) for v in values)])
    return buffer.getvalue()

