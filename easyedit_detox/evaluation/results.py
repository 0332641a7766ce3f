"""A results folder: cases.jsonl written case by case, summary.json and summary.md written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional

from ..errors import UserError
from .compare import summary_markdown

CASES_FILE = "cases.jsonl"
SUMMARY_FILE = "summary.json"
SUMMARY_MD = "summary.md"
RUN_FILE = "run.json"


def write_atomically(path: str, text: str) -> None:
    """Write `text` to `path` so that readers see the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_cases(path: str) -> List[Dict[str, Any]]:
    """The complete case lines of a cases file (a last line cut short by a crash is dropped)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        text = f.read()
    lines = text.split("\n")
    lines.pop()  # '' after the final newline, or a line an interrupted write cut short: it runs again
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            raise UserError(f"{path}: line {number} is not JSON; delete that line (or the file) and run again") from None
    return rows


class ResultsFolder:
    """One evaluation's folder; refuses to mix runs of different settings."""

    def __init__(self, folder: str, run_info: Dict[str, Any], cases_file: str = CASES_FILE):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create results folder {folder!r}: {exc.strerror}; choose another --out") from None
        self.cases_path = os.path.join(folder, cases_file)
        run_path = os.path.join(folder, RUN_FILE)
        if os.path.exists(run_path):
            with open(run_path, encoding="utf-8") as f:
                previous = json.load(f)
            if previous != run_info:
                diff = sorted(k for k in set(previous) | set(run_info) if previous.get(k) != run_info.get(k))
                raise UserError(f"results folder {folder!r} holds a run with other settings ({', '.join(diff)}); "
                                "use another --out, or delete the folder to start over")
        else:
            write_atomically(run_path, json.dumps(run_info, indent=2, sort_keys=True) + "\n")
        self._repair_tail()

    def _repair_tail(self) -> None:
        """Cut a last line left half-written by an interrupted run, so appends start on a fresh line."""
        if not os.path.exists(self.cases_path):
            return
        with open(self.cases_path, "rb") as f:
            data = f.read()
        if data and not data.endswith(b"\n"):
            keep = data[: data.rfind(b"\n") + 1]
            with open(self.cases_path, "wb") as f:
                f.write(keep)

    def done(self) -> List[Dict[str, Any]]:
        """Cases already written."""
        return read_cases(self.cases_path)

    def append(self, case: Dict[str, Any]) -> None:
        """Append one finished case as one line, flushed to disk before returning."""
        line = json.dumps(case, ensure_ascii=False) + "\n"
        with open(self.cases_path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def write_summary(self, summary: Dict[str, Any], header: Optional[str] = None) -> None:
        """summary.json and summary.md, each replaced atomically."""
        write_atomically(os.path.join(self.folder, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
        text = (header + "\n\n" if header else "") + summary_markdown(summary) + "\n"
        write_atomically(os.path.join(self.folder, SUMMARY_MD), text)
