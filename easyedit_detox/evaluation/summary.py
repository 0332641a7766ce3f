"""summary.json and summary.md of a run: the facts a table needs, the scores, the wall time per phase.

`SummaryWriting` is the part of `runner.Evaluation` that writes them; report/ reads them back
(report/summaries.py states the contract).
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from easyedit_detox.report.tables import summary_markdown
from .degeneration import RULE as DEGENERATION_RULE
from .metrics import word_tokenizer_name
from .probes.base import VANILLA
from .settings import TIME_PHASES
from .tally import GeneralTally, SafeEditTally


class SummaryWriting:
    """Writes a run's summary from its running totals (mixed into `runner.Evaluation`, whose state it reads)."""

    def _summary_facts(self) -> Dict[str, Any]:
        return {"method": self.method.name, "model": self.model_label, "judge": self.judge.name,
                "data": self.run_info["data"], "data_sha256": self.run_info["data_sha256"],
                "generation": self.generation_info(), "suffix_system_prompt": self.suffix,
                "prompt_format": self.format.name,
                "dtype": str(next(self.model.parameters()).dtype), "fluency_tokenizer": word_tokenizer_name(),
                "degenerate_rule": DEGENERATION_RULE, "general": self.general_info(), "protocol": self.protocol_name,
                **({"train": {**self.run_info["train"], **({"edit": self.detoxified["edit"]} if self.detoxified else {})}}
                   if "train" in self.run_info else {})}

    def _earlier_time(self) -> Optional[Dict[str, float]]:
        """The phase seconds earlier processes of this run recorded in summary.json; None when they did not say."""
        try:
            with open(os.path.join(self.out_dir, "summary.json"), encoding="utf-8") as f:
                earlier = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            return None
        seconds = (earlier.get("time") or {}).get("seconds") if isinstance(earlier, dict) else None
        if not isinstance(seconds, dict):
            return None  # written before summaries recorded time: the finished cases' cost is unknown
        return {k: float(v) for k, v in seconds.items() if k in TIME_PHASES and isinstance(v, (int, float))}

    def time_block(self, n_cases: int) -> Optional[Dict[str, Any]]:
        """summary.json's "time": wall seconds per phase (over every process of the run), in all and per case;
        None when an earlier process's share is unknown (a folder written before time was recorded)."""
        if self.earlier_time is None:
            return None
        seconds = {k: round(self.earlier_time.get(k, 0.0) + self.timings[k], 3) for k in TIME_PHASES}
        total = sum(seconds.values())
        return {"seconds": seconds, "total_seconds": round(total, 3),
                "seconds_per_case": round(total / n_cases, 3) if n_cases else None}

    def _add_time(self, summary: Dict[str, Any]) -> None:
        block = self.time_block(summary["n_cases"])
        if block is not None:
            summary["time"] = block

    def write_summary(self, tally: SafeEditTally, general: GeneralTally) -> Dict[str, Any]:
        """Summarise the running totals into summary.json / summary.md (atomically); returns the summary."""
        summary = {**self._summary_facts(), **tally.summary()}
        self._add_time(summary)
        extra = general.summary()
        for side in ("pre", "post"):
            if summary[side]:
                summary[side].update(extra[side])
        self._write(summary)
        return summary

    def write_sequential_summary(self, rows: List[Dict[str, Any]], general: GeneralTally) -> Dict[str, Any]:
        """The sequential run's summary: pre = vanilla, post = the last checkpoint, and the curve."""
        first, last = rows[0], rows[-1]
        summary = {**self._summary_facts(), "n_cases": len(first["cases"]),
                   "case_ids": [int(i) for i in first["cases"]], "pre": dict(first["scores"]),
                   "post": dict(last["scores"]) if last["after_edits"] else {}}
        self._add_time(summary)
        for key in ("DS_edited_so_far", "DS_not_yet_edited"):
            summary["pre"].pop(key, None)
            summary["post"].pop(key, None)
        labels = {row["after_edits"]: (VANILLA if row["after_edits"] == 0 else f"after {row['after_edits']} edits")
                  for row in rows}
        curve = []
        for row in rows:
            point = {"after_edits": row["after_edits"], **row["scores"]}
            per_state = general.summary(vanilla=labels[row["after_edits"]], edited=[])
            point.update(per_state["pre"])
            curve.append(point)
        summary["sequential"] = curve
        for side, n in (("pre", 0), ("post", last["after_edits"])):
            if summary[side]:
                summary[side].update(general.summary(vanilla=labels[n], edited=[])["pre"])
        self._write(summary)
        return summary

    def _write(self, summary: Dict[str, Any]) -> None:
        if not summary.get("post"):
            return  # nothing edited yet: no table to show
        header = (f"# SafeEdit: {self.method.name} on {self.model_label}\n\n"
                  f"Data: `{self.run_info['data']}` ({summary['n_cases']} cases). Judge: `{self.judge.name}`. "
                  f"Generation: {self.settings.protocol}. Prompt format: {self.format.name}. Fluency words: {summary['fluency_tokenizer']}.")
        train = summary.get("train")
        if train:
            header += (f"\n\nGlobal protocol: detoxified once from {train['records']} records of `{train['data']}` "
                       f"(sha256 {train['data_sha256']}), then every case answered by that model.")
        t = summary.get("time")
        if t:
            header += (f"\n\nWall time: {t['total_seconds']:.0f} s ({t['seconds_per_case']:.1f} s per case): "
                       + ", ".join(f"{k} {v:.0f} s" for k, v in t["seconds"].items()) + ".")
        self.folder.write_summary(summary, header + "\n\n" + summary_markdown(summary))
