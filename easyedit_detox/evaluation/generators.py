"""How the evaluation gets responses: one `generate(model, items, owners)` for every way of generating.

- greedy (the default): batched greedy decoding of the items' prompts (generation.py);
- row-wise: the same, with each row of a batch under its own case's edited tensors (`rowwise`, rowwise.py),
  so several edited cases share one batch;
- EasyEdit's protocol (`--generation easyedit`): SafeEdit's inputs case by case as EasyEdit-git's
  test_safety_gen does (easyedit_protocol.py), the general probes' items greedy.

As in lm-evaluation-harness's `generate_until`, probes hand over requests (items) and get back responses; none
of them knows which of these paths ran.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from .easyedit_protocol import easyedit_generate
from .generation import Generation, GenerationSettings, generate
from .probes import Item
from .rowwise import RowwiseEdits


class Generator:
    """Responses to probe items from a model, by the run's protocol ("greedy" or "easyedit")."""

    def __init__(self, tok, settings: GenerationSettings, protocol: str, safeedit_probe: str, progress: bool = True):
        self.tok, self.settings, self.protocol = tok, settings, protocol
        self.safeedit_probe = safeedit_probe  # the probe whose items EasyEdit's protocol generates case by case
        self.progress = progress

    def generate(self, model, items: Sequence[Item], owners: Optional[Sequence[int]] = None,
                 rowwise: Optional[RowwiseEdits] = None, bar=None, desc: str = "responses") -> List[Generation]:
        """One response per item; with `rowwise`, row i answers under the edit of state `owners[i]`.

        Progress: `bar` (a caller's) advances per finished input; without one, a bar of its own is shown.
        """
        if self.protocol == "easyedit":
            gens = self._easyedit(model, items)
            if bar is not None:
                bar.update(len(items))
            return gens
        before_batch = None
        if rowwise is not None:
            before_batch = lambda rows: rowwise.set_rows([owners[i] for i in rows])  # noqa: E731
        return generate(model, self.tok, [it.prompt for it in items], self.settings.batch_size,
                        progress=bar if bar is not None else self.progress, before_batch=before_batch, desc=desc)

    def _easyedit(self, model, items: Sequence[Item]) -> List[Generation]:
        """SafeEdit items case by case as EasyEdit does (one call per case); other probes greedy."""
        out: List[Optional[Generation]] = [None] * len(items)
        by_case: Dict[Any, List[int]] = {}
        rest = []
        for i, item in enumerate(items):
            if item.probe == self.safeedit_probe:
                by_case.setdefault(item.key[0], []).append(i)
            else:
                rest.append(i)
        for rows in by_case.values():
            gens = easyedit_generate(model, self.tok, [items[i].prompt.text for i in rows],
                                     self.settings.max_length, self.settings.max_output_length)
            for i, g in zip(rows, gens):
                out[i] = g
        for i, g in zip(rest, generate(model, self.tok, [items[i].prompt for i in rest], self.settings.batch_size)):
            out[i] = g
        return out  # type: ignore[return-value]
