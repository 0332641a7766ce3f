"""A results folder: JSON-lines files appended line by line, run.json and the summaries written atomically.

Nothing already written is ever rewritten: a line is appended and fsync'd; a last line left half
written by a crash is cut off in place (truncated to the last whole line) before the next append; a
failed write (a full disk) is rolled back to the previous whole line and reported as a
`StorageError`; summaries are replaced atomically, so the previous one survives any failure.
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any, Dict, Iterable, List, Optional

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import write_atomically

CASES_FILE = "cases.jsonl"
GENERAL_FILE = "general.jsonl"
SEQUENTIAL_FILE = "sequential.jsonl"
DETOXIFIED_FILE = "detoxified.json"  # the global protocol's edit: its weights' digest, for resuming
SUMMARY_FILE = "summary.json"
SUMMARY_MD = "summary.md"
RUN_FILE = "run.json"
# Bumped whenever the line format changes, so a folder of an older format is refused, not misread.
FORMAT = 2


class StorageError(UserError):
    """Results could not be written (disk full, permissions); what was written before is intact."""


def storage_error(path: str, exc: OSError) -> StorageError:
    """A one-line StorageError for a failed write of `path`."""
    reason = exc.strerror or str(exc)
    hint = "free some disk space" if exc.errno == errno.ENOSPC else "check the folder's permissions and free space"
    return StorageError(f"cannot write {path}: {reason}; {hint} and run the same command again to resume "
                        "(every finished case is kept)")


def read_lines(path: str) -> List[Dict[str, Any]]:
    """The complete JSON lines of a file (a last line cut short by a crash is ignored)."""
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



def repair_tail(path: str) -> None:
    """Cut, in place, a last line an interrupted write left without its newline."""
    if not os.path.exists(path):
        return
    size = os.path.getsize(path)
    if size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return
        # Walk back to the last newline in blocks; the file before it is never rewritten.
        position, keep = size, 0
        while position > 0:
            step = min(1 << 16, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            found = block.rfind(b"\n")
            if found >= 0:
                keep = position + found + 1
                break
        f.truncate(keep)
        f.flush()
        os.fsync(f.fileno())


def append_lines(path: str, rows: Iterable[Dict[str, Any]]) -> None:
    """Append `rows` as JSON lines and fsync; on failure, roll the file back and raise StorageError."""
    data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    if not data:
        return
    with open(path, "ab") as f:
        start = f.tell()
        try:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:
            try:
                f.truncate(start)  # no half line left behind for the next run to trip over
            except OSError:
                pass  # repair_tail cuts it on the next run
            raise storage_error(path, exc) from None


def write_text(path: str, text: str) -> None:
    """Replace `path` atomically; StorageError (previous file intact) when the disk refuses."""
    try:
        write_atomically(path, text)
    except OSError as exc:
        raise storage_error(path, exc) from None


class ResultsFolder:
    """One evaluation's folder; refuses to mix runs of different settings."""

    def __init__(self, folder: str, run_info: Dict[str, Any], suffix: str = "", may_add_cases: bool = False):
        self.folder = folder
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create results folder {folder!r}: {exc.strerror}; choose another --out") from None
        run_info = {**run_info, "format": FORMAT}
        run_path = os.path.join(folder, RUN_FILE)
        if os.path.exists(run_path):
            try:
                with open(run_path, encoding="utf-8") as f:
                    previous = json.load(f)
            except (OSError, json.JSONDecodeError):
                raise UserError(f"{run_path} cannot be read; it is not a results folder of this package, "
                                "use another --out") from None
            a, b = _comparable(previous, run_info), _comparable(run_info, previous)
            diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            if diff == [SELECTION] and may_add_cases and set(a[SELECTION]) <= set(b[SELECTION]):
                # Only cases added, and no general probe spreads over the selection: every finished case line and
                # number stays as it is, so the run grows (run.json then names the larger selection).
                write_text(run_path, json.dumps(run_info, indent=2, sort_keys=True) + "\n")
            elif diff:
                hint = (" (a run may only grow by cases, and only without general probes, whose edited states and "
                        "items depend on the selection)" if SELECTION in diff else "")
                raise UserError(f"results folder {folder!r} holds a run with other settings ({', '.join(diff)})"
                                f"{hint}; use another --out, or delete the folder to start over")
        else:
            write_text(run_path, json.dumps(run_info, indent=2, sort_keys=True) + "\n")
        self.suffix = suffix
        for name in (CASES_FILE, GENERAL_FILE, SEQUENTIAL_FILE):
            repair_tail(self.path(name))
        if not suffix:  # one process: no other writer of ours is mid-write in this folder
            self._drop_stale_temporaries()

    def _drop_stale_temporaries(self) -> None:
        """Remove temporary files an atomic write of ours left when its process was killed mid-write."""
        ours = (SUMMARY_FILE, SUMMARY_MD, RUN_FILE, CASES_FILE, GENERAL_FILE)
        for name in os.listdir(self.folder):
            if name.startswith(".tmp-") and name.endswith(tuple("-" + o for o in ours)):
                try:
                    os.unlink(os.path.join(self.folder, name))
                except OSError:
                    pass

    def path(self, name: str) -> str:
        """Path of results file `name` for this process (`cases.rank1.jsonl` under torchrun rank 1)."""
        if self.suffix and name.endswith(".jsonl"):
            name = name[: -len(".jsonl")] + self.suffix + ".jsonl"
        return os.path.join(self.folder, name)

    def read(self, name: str) -> List[Dict[str, Any]]:
        """The complete lines of results file `name`."""
        return read_lines(self.path(name))

    def append(self, name: str, rows: Iterable[Dict[str, Any]]) -> None:
        """Append rows to results file `name`, durably."""
        append_lines(self.path(name), rows)

    def write_summary(self, summary: Dict[str, Any], markdown: str) -> None:
        """summary.json and summary.md, each replaced atomically."""
        write_text(os.path.join(self.folder, SUMMARY_FILE), json.dumps(summary, indent=2) + "\n")
        write_text(os.path.join(self.folder, SUMMARY_MD), markdown + "\n")

    def write_file(self, name: str, text: str) -> None:
        """Replace file `name` of the folder atomically."""
        write_text(os.path.join(self.folder, name), text)


# Batch settings change a greedy response only where numerics depend on batch composition: in half
# precision. A float32 run may resume with other batch settings; run.json keeps the first ones.
BATCH_KEYS = ("batch_size", "cases_per_batch")


SELECTION = "case_ids"
# A folder written before run.json named its selection (no case_ids) is compared without the facts added
# then (the selection, the general probes' states and item digests), as it always was.


def _comparable(run_info: Dict[str, Any], other: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    generation = dict(run_info.get("generation") or {})
    if generation.get("dtype") == "torch.float32":
        for key in BATCH_KEYS:
            generation.pop(key, None)
    out = {**run_info, "generation": generation}
    if other is not None and (SELECTION not in run_info or SELECTION not in other):
        out.pop(SELECTION, None)
        general = dict(out.get("general") or {})
        if general:
            general.pop("states", None)
            general["probes"] = {name: {k: v for k, v in facts.items() if k != "items_sha256"}
                                 for name, facts in (general.get("probes") or {}).items()}
            out["general"] = general
    return out


def marker_path(folder: str, rank: int) -> str:
    """Path of the marker a rank writes when it has finished its share of the cases."""
    return os.path.join(folder, f"rank{rank}.done")


def read_marker(path: str) -> Optional[str]:
    """The run id a rank's marker holds, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return None
