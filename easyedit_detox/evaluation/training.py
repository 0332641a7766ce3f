"""The global protocol's training set: the records a method detoxifies from once, kept apart from the evaluated cases.

A training record whose adversarial prompt or question is also an evaluated case's would let the
detoxified model have seen the very attack (or the very harmful question) it is scored on, so it is
refused, naming both records. SafeEdit puts each question under several jailbreak templates, so
records that differ may still share a question.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import file_digest
from easyedit_detox.data.safeedit import SafeEditCase, SafeEditDataset
from .settings import select_cases

# The record fields two cases must not share across training and evaluation.
SHARED_FIELDS = ("adversarial prompt", "question")


@dataclass(frozen=True)
class TrainingSet:
    """Which records of which file the method detoxifies from (`evaluate --train FILE [--train-limit N]`)."""

    path: str
    limit: Optional[int] = None
    case_ids: Optional[Sequence[int]] = None  # --train-cases: only these record ids

    def cases(self) -> List[SafeEditCase]:
        """The training records, in file order."""
        try:
            dataset = SafeEditDataset(self.path, limit=self.limit)
        except UserError as exc:
            raise type(exc)(f"--train: {exc}") from None
        return select_cases(dataset, self.case_ids, option="--train-cases")

    def describe(self, cases: Sequence[SafeEditCase]) -> Dict[str, Any]:
        """What run.json and summary.json record of it: the file, its digest and the records used."""
        return {"data": os.path.abspath(self.path), "data_sha256": file_digest(self.path),
                "records": len(cases), "case_ids": [c.case_id for c in cases]}


def check_disjoint(train: Sequence[SafeEditCase], evaluated: Sequence[SafeEditCase]) -> None:
    """Raise UserError naming the first training record that shares an adversarial prompt or question with an
    evaluated case."""
    for field in SHARED_FIELDS:
        seen = {c.record.get(field): c.case_id for c in evaluated}
        clashes = [(c.case_id, seen[c.record.get(field)]) for c in train if c.record.get(field) in seen]
        if clashes:
            pairs = ", ".join(f"training record {t} / evaluated record {e}" for t, e in clashes)
            ids = ",".join(str(t) for t, _ in clashes)
            raise UserError(f"--train: {len(clashes)} training record(s) share their {field!r} with an evaluated "
                            f"case ({pairs}); the detoxified model would be scored on what it was trained on. "
                            f"Leave them out (--train-cases without {ids}) or evaluate other cases")
