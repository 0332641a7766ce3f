"""Whether runs can share a table: the fields they must share, and what differs when they do not.

Runs are comparable when they share data (``data_sha256``), judge, generation settings (the whole
``generation`` object except `GENERATION_KEYS_NOT_AFFECTING_RESPONSES`) and case ids (as a set).
This module imports the standard library only: `compare` must start fast (plots import matplotlib
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple
from .summaries import COMPARED_FIELDS, FORCE_HINT, GENERATION_KEYS_NOT_AFFECTING_RESPONSES, UNKNOWN


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
    names = [method_label(s) for s in summaries]
    if len(set(names)) < len(names):
        names = [f"{method_label(s)} ({s['model']})" for s in summaries]
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
        if field == "protocol":
            # Per-case and sequential runs both edit with the evaluated cases and share a table (and the sequential
            # curve); a global run's model was trained on other records.
            values = ["global (--train)" if protocol_of(s) == "global" else "edits from the evaluated cases"
                      for s in summaries]
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


def method_label(summary: Mapping[str, Any]) -> str:
    """The run's method, marked "(global)" under the global protocol: per case and global are different runs."""
    return summary["method"] + (" (global)" if protocol_of(summary) == "global" else "")


def protocol_of(summary: Mapping[str, Any]) -> str:
    """'per-case', 'sequential' or 'global'; runs written before the field existed were per case or sequential."""
    return summary.get("protocol") or ("sequential" if summary.get("sequential") else "per-case")


def prompt_format_of(summary: Mapping[str, Any]) -> str:
    """The run's prompt format; runs written before the chat format existed fed the raw text."""
    return summary.get("prompt_format") or "raw"


def refusal_message(differences: Sequence[Difference]) -> str:
    """The one-line message of a refused comparison."""
    return ("runs are not comparable, they differ in " + "; ".join(str(d) for d in differences)
            + f"; {FORCE_HINT}")


