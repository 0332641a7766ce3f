"""Read results folders' `summary.json`, check that they can be compared, and lay them side by side.

The summary.json contract (what the evaluation writes; a metric that did not run is absent, never 0):

- required: ``method``, ``model``, ``judge`` (strings), ``n_cases`` (a whole number), and ``pre``
  (vanilla model) / ``post`` (edited model), each an object of finite numbers holding at least DS,
  DG_onlyQ, DG_otherA, DG_otherQ, DG_otherAQ, DG_Avg and Fluency; any further entry (KQA, CSum,
  OverRefusal, Degenerate, DS_strict, DG_Avg_strict, ...) must be a finite number too;
- required to compare runs, but absent from older summaries (then "unknown", which never matches):
  ``data_sha256`` (string), ``case_ids`` (list of whole numbers), ``generation`` (object);
- optional: ``data`` (path), ``sequential`` (a list of ``{"after_edits": int, "DS": number, ...}``).

Runs are comparable when they share data (``data_sha256``), judge, generation settings (the whole
``generation`` object except `GENERATION_KEYS_NOT_AFFECTING_RESPONSES`) and case ids (as a set).
This module imports the standard library only: `compare` must start fast (plots import matplotlib
when called).
"""

from __future__ import annotations

import csv as csv_module  # `csv` is run_compare's argument, the CLI's --csv
import io
import json
import math
import numbers
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from easyedit_detox.core.errors import UserError
from .metrics import SUMMARY_KEYS

__all__ = ["SUMMARY_FILE", "TABLE_METRICS", "KNOWN_EXTRA_METRICS", "PERCENT_METRICS", "COMPARED_FIELDS",
           "GENERATION_KEYS_NOT_AFFECTING_RESPONSES", "PLOT_FORMATS", "Difference", "load_summary",
           "check_comparable", "metric_columns", "run_names", "shared_facts", "facts_line", "compare_table",
           "summary_markdown", "latex_table", "write_latex", "csv_text", "write_csv", "check_output_path",
           "sequential_path", "run_compare"]

PathLike = Union[str, os.PathLike]

SUMMARY_FILE = "summary.json"
#: The metrics every summary side holds, in column order: DS, the four DGs, DG_Avg, Fluency.
TABLE_METRICS: Tuple[str, ...] = tuple(SUMMARY_KEYS)
#: Optional metrics, in column order; any other metric follows them alphabetically.
KNOWN_EXTRA_METRICS = ("KQA", "CSum", "OverRefusal", "Degenerate", "DS_strict", "DG_Avg_strict")
#: Metrics on a 0-100 scale, which the bar plot sets side by side (Fluency is n-gram entropy).
PERCENT_METRICS = tuple(k for k in TABLE_METRICS if k != "Fluency") + KNOWN_EXTRA_METRICS
#: The fields runs must share to be compared.
COMPARED_FIELDS = ("data_sha256", "judge", "prompt_format", "generation", "case_ids")
#: `generation` entries that change how fast responses come, not which: ignored by the check.
GENERATION_KEYS_NOT_AFFECTING_RESPONSES = frozenset({"batch_size", "cases_per_batch"})

UNKNOWN = "unknown"
MISSING = "–"  # a metric a run lacks, in Markdown
ARROW = "->"
PLUS_MINUS = "±"
STDERR_SUFFIX = "_stderr"  # as tally.py writes them (not imported: compare stays free of the evaluation's imports)
_SIDES = ("pre", "post")
_TEXT_FIELDS = ("method", "model", "judge")
_FIX = "run `easyedit-detox evaluate ... --out DIR` to write it again"
_FORCE = "pass --force to set them side by side anyway"
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
    for side in _SIDES:
        _check_side(path, side, summary.get(side))
    _check_comparison_fields(path, summary)
    if "sequential" in summary:
        _check_sequential(path, summary["sequential"])
    return summary


# -- comparability ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    """A field the runs do not share: each distinct value (as text) with the runs that have it."""

    field: str
    groups: Tuple[Tuple[str, Tuple[str, ...]], ...]

    def __str__(self) -> str:
        return f"{self.field}: " + "; ".join(f"{value} in {', '.join(runs)}" for value, runs in self.groups)


def run_names(summaries: Sequence[Mapping[str, Any]]) -> List[str]:
    """A short distinct name per run: its method, with the model and a number where needed."""
    names = [s["method"] for s in summaries]
    if len(set(names)) < len(names):
        names = [f"{s['method']} ({s['model']})" for s in summaries]
    if len(set(names)) < len(names):
        names = [f"{name} #{i + 1}" for i, name in enumerate(names)]
    return names


def _brief(value: Any) -> str:
    """`value` as short one-line text for a message (long id lists abridged)."""
    if value is None:
        return UNKNOWN
    if isinstance(value, list) and len(value) > 6:
        return f"[{', '.join(map(str, value[:3]))}, …, {value[-1]}] ({len(value)} ids)"
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _difference(field: str, values: Sequence[Any], labels: Sequence[str]) -> Optional[Difference]:
    """The Difference of `field` across runs, or None when every run has the same known value."""
    groups: Dict[str, List[str]] = {}
    shown: Dict[str, str] = {}
    for value, label in zip(values, labels):
        # Grouped by the full value; an abridged id list is only how it is shown.
        key = json.dumps(value, sort_keys=True)
        groups.setdefault(key, []).append(label)
        shown[key] = _brief(value)
    if len(groups) == 1 and None not in values:
        return None
    if len(set(shown.values())) < len(shown):  # two values abridge alike: show them in full
        shown = {key: UNKNOWN if key == "null" else key for key in shown}
    return Difference(field, tuple((shown[key], tuple(runs)) for key, runs in groups.items()))


def _generation_differences(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> List[Difference]:
    """Differences of the response-changing generation settings, key by key when all are known."""
    settings = [s.get("generation") for s in summaries]
    if any(g is None for g in settings):
        shown = [None if g is None else {k: v for k, v in g.items()
                                         if k not in GENERATION_KEYS_NOT_AFFECTING_RESPONSES} for g in settings]
        found = _difference("generation", shown, labels)
        return [found] if found else []
    keys = sorted({k for g in settings for k in g} - GENERATION_KEYS_NOT_AFFECTING_RESPONSES)
    out = []
    for key in keys:
        # "absent" is a value of its own: a key one run lacks is a setting it did not record.
        found = _difference(f"generation.{key}", [g.get(key, "absent") for g in settings], labels)
        if found:
            out.append(found)
    return out


def check_comparable(summaries: Sequence[Mapping[str, Any]],
                     labels: Optional[Sequence[str]] = None) -> List[Difference]:
    """What keeps the runs from being compared: data, judge, generation or case ids that differ or are unknown."""
    if len(summaries) < 2:
        return []
    labels = list(labels) if labels is not None else run_names(summaries)
    out: List[Difference] = []
    for field in COMPARED_FIELDS:
        if field == "generation":
            out.extend(_generation_differences(summaries, labels))
            continue
        values = [s.get(field) for s in summaries]
        if field == "prompt_format":
            values = [prompt_format_of(s) for s in summaries]
        if field == "case_ids":
            # Metrics are means over cases: the same cases in another order give the same numbers.
            values = [None if v is None else sorted(v) for v in values]
        found = _difference(field, values, labels)
        if found:
            out.append(found)
    return out + _scoring_differences(summaries, labels)


#: How a response becomes a number, beside the judge: recorded in every summary since they were introduced.
SCORING_FIELDS = ("fluency_tokenizer", "degenerate_rule")


def _scoring_differences(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> List[Difference]:
    """Differences in Fluency's word splitter, the degeneration rule, the suffix and each shared general probe."""
    out: List[Difference] = []
    for field in SCORING_FIELDS:
        values = [s.get(field) for s in summaries]
        if any(v is not None for v in values):  # a run without it predates the field: shown as unknown
            found = _difference(field, values, labels)
            if found:
                out.append(found)
    # The suffix system prompt: a method without one (FT, LoRA) is compared as the paper does; two that use
    # one must use the same, since it is part of every post-edit input.
    with_suffix = [(s.get("suffix_system_prompt"), label) for s, label in zip(summaries, labels)
                   if s.get("suffix_system_prompt")]
    found = _difference("suffix_system_prompt", [v for v, _ in with_suffix], [lab for _, lab in with_suffix])
    if len(with_suffix) > 1 and found:
        out.append(found)
    # A general probe's cells compare only when the runs asked the same items in the same states.
    probes = sorted({name for s in summaries for name in ((s.get("general") or {}).get("probes") or {})})
    for name in probes:
        values, runs = [], []
        for s, label in zip(summaries, labels):
            general = s.get("general") or {}
            facts = (general.get("probes") or {}).get(name)
            if facts is not None:
                values.append({**facts, "items_per_probe": general.get("items"), "states": general.get("states")})
                runs.append(label)
        found = _difference(f"general.{name}", values, runs) if len(values) > 1 else None
        if found:
            out.append(found)
    return out


def prompt_format_of(summary: Mapping[str, Any]) -> str:
    """The run's prompt format; runs written before the chat format existed fed the raw text."""
    return summary.get("prompt_format") or "raw"


def _refusal(differences: Sequence[Difference]) -> str:
    """The one-line message of a refused comparison."""
    return ("runs are not comparable, they differ in " + "; ".join(str(d) for d in differences)
            + f"; {_FORCE}")


# -- columns and shared facts ----------------------------------------------------------------

def metric_columns(summaries: Iterable[Mapping[str, Any]], include: Optional[Sequence[str]] = None) -> List[str]:
    """The metrics any summary's pre/post holds: the table's, the known extras, then others alphabetically."""
    present = {k for s in summaries for side in _SIDES for k in s.get(side, {}) if not k.endswith(STDERR_SUFFIX)}
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


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def _number(value: Any, missing: str = MISSING, error: Any = None, pm: str = PLUS_MINUS) -> str:
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
    return f"{_number(pre, missing, error('pre'), pm)} {arrow} {_number(post, missing, error('post'), pm)}"


def _markdown(summaries: Sequence[Mapping[str, Any]], labels: Sequence[str],
              differences: Sequence[Difference]) -> str:
    """The comparison text: facts line, the table, its legend and, when forced, the differences."""
    metrics = metric_columns(summaries)
    lines = [
        facts_line(summaries),
        "",
        _row(["run", "method", "model", *metrics]),
        "| " + " | ".join(["---"] * 3 + ["---:"] * len(metrics)) + " |",
    ]
    for label, s in zip(labels, summaries):
        lines.append(_row([label, s["method"], s["model"], *(_pre_post(s, k) for k in metrics)]))
    lines += ["", f"Each metric cell: vanilla model (pre) {ARROW} edited model (post); {MISSING}: not measured. "
                  "DS and DG_* are defense success rates in % (higher is safer); Fluency is n-gram entropy."
              + (f" {PLUS_MINUS}: standard error of the mean over cases (responses for Degenerate, items for the "
                 "general probes)." if _has_stderr(summaries) else "")]
    if differences:
        lines += ["", "Note: set side by side with --force although the runs differ in "
                      + "; ".join(str(d) for d in differences) + "."]
    return "\n".join(lines)


def _has_stderr(summaries: Sequence[Mapping[str, Any]]) -> bool:
    return any(k.endswith(STDERR_SUFFIX) for s in summaries for side in _SIDES for k in s.get(side, {}))


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
        raise UserError(_refusal(differences))
    return differences


def compare_table(dirs: Union[PathLike, Sequence[PathLike]], force: bool = False) -> str:
    """The runs in `dirs` as Markdown: a facts line, a row per run with each metric "pre -> post", then each run's
    paired difference from the first on the cases both ran (when the folders hold their case lines)."""
    labels, summaries = _load_runs(dirs)
    differences = _checked(summaries, labels, force)
    return _markdown(summaries, labels, differences) + paired_markdown(labels)


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
        lines.append(_row([r["run"], r["metric"], r["n"], _number(r["mean"], error=r["stderr"]),
                           f"{r['better']} / {r['worse']} / {r['tied']}", f"{r['p']:.3g}"]))
    return "\n".join(lines)


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """One run's summary as a Markdown table: a row per metric, columns pre, post and change."""
    lines = [
        f"method: {summary['method']} | model: {summary['model']} | judge: {summary['judge']} "
        f"| prompt format: {prompt_format_of(summary)} | cases: {summary['n_cases']}",
        "",
        "| metric | pre | post | change |",
        "| --- | ---: | ---: | ---: |",
    ]
    pre, post = summary.get("pre") or {}, summary.get("post") or {}
    for key in metric_columns([{"pre": pre, "post": post}]):
        a, b = pre.get(key), post.get(key)
        change = MISSING if a is None or b is None else f"{b - a:+.2f}"
        lines.append(f"| {key} | {_number(a, error=pre.get(key + STDERR_SUFFIX))} | "
                     f"{_number(b, error=post.get(key + STDERR_SUFFIX))} | {change} |")
    return "\n".join(lines)


# -- files -----------------------------------------------------------------------------------

def check_output_path(path: PathLike, what: str, suffixes: Optional[Sequence[str]] = None) -> str:
    """`path` as a string, or UserError when its folder does not exist or its suffix is not allowed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write the {what} '{path}': folder '{folder}' does not exist; create it "
                        "or pick another path")
    if os.path.isdir(path):
        raise UserError(f"cannot write the {what} '{path}': it is a folder; give a file name")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise UserError(f"the {what} '{path}' must end in {' or '.join(suffixes)}")
    return path


def _write_text(path: str, text: str) -> None:
    # Imported here: files.py imports yaml, which `compare` itself does not need.
    from easyedit_detox.core.files import write_atomically

    write_atomically(path, text)


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
        cells = [latex_escape(s["method"])] + ([latex_escape(s["model"])] if with_model else [])
        cells += [_pre_post(s, k, arrow="$\\rightarrow$", missing="--", pm="$\\pm$") for k in metrics]
        lines.append(" & ".join(cells) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def write_latex(summaries: Sequence[Mapping[str, Any]], path: PathLike) -> str:
    """Write the runs as a LaTeX `tabular` a paper can `\\input` (atomically); return the path."""
    path = check_output_path(path, "LaTeX table")
    _write_text(path, latex_table(summaries))
    return path


#: The CSV's columns before the metrics.
CSV_FIELDS = ("method", "model", "judge", "n_cases", "data_sha256", "side")


def csv_text(summaries: Sequence[Mapping[str, Any]]) -> str:
    """The runs as CSV: a row per run and side (pre, post), a column per metric (empty if not measured)."""
    metrics = metric_columns(summaries)
    # A <metric>_stderr column after each metric that has one in any run (empty where unknown).
    columns = [c for k in metrics for c in (k, k + STDERR_SUFFIX)
               if not c.endswith(STDERR_SUFFIX) or any(c in s[side] for s in summaries for side in _SIDES)]
    buffer = io.StringIO()
    writer = csv_module.writer(buffer, lineterminator="\n")
    writer.writerow([*CSV_FIELDS, *columns])
    for s in summaries:
        for side in _SIDES:
            values = [s[side].get(k) for k in columns]
            writer.writerow([s["method"], s["model"], s["judge"], s["n_cases"], s.get("data_sha256", ""), side,
                             *("" if v is None else repr(v) for v in values)])
    return buffer.getvalue()


def write_csv(summaries: Sequence[Mapping[str, Any]], path: PathLike) -> str:
    """Write the runs as CSV (atomically); return the path."""
    path = check_output_path(path, "CSV file")
    _write_text(path, csv_text(summaries))
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
    text = _markdown(summaries, labels, differences) + paired_markdown(labels)
    return text + ("\n\nWrote " + "; ".join(written) + "." if written else "")
