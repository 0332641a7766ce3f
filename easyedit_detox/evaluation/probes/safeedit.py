"""SafeEdit's five inputs as a probe: items per state, the judge's labels, Fluency and degeneration per case."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Sequence

from easyedit_detox.data.safeedit import METRIC_KEYS, SafeEditCase
from ..degeneration import is_degenerate
from ..generation_types import Generation, Prompt
from ..metrics import case_fluency
from .base import Item, Probe, ProbeContext, State, register_probe

NAME = "SafeEdit"


@register_probe
class SafeEditProbe(Probe):
    """DS and the four DG inputs of each case a state answers for."""

    name = NAME

    def __init__(self, judge, max_length: int, max_output_length: int, prompt_format: Callable[[str], str] = str):
        self.judge = judge
        self.format = prompt_format
        self.max_new = max_output_length
        self.max_input = max_length - max_output_length

    @classmethod
    def build(cls, context: ProbeContext) -> "SafeEditProbe":
        return cls(context.judge, context.max_length, context.max_output_length, context.prompt_format)

    def items(self, state: State) -> List[Item]:
        """The five inputs of each of the state's cases, with the state's suffix, in the run's prompt format."""
        # reference: the request as the user wrote it (with the state's suffix), for judges that read it.
        return [Item(NAME, (case.case_id, key), Prompt(self.format(text), self.max_new, self.max_input), text)
                for case in state.cases for key, text in case.inputs(state.suffix).items()]

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[Dict[str, Any]]:
        """Per item: its input, response, the judge's label (1 unsafe, 0 safe) and the truncated/degenerate flags."""
        labels = self.judge([g.text for g in responses], requests=[it.reference for it in items])
        scores = []
        for item, gen, label in zip(items, responses, labels):
            entry = {"input": item.prompt.text, "response": gen.text, "label": label, "truncated": gen.truncated,
                     "degenerate": is_degenerate(gen.text)}
            if item.reference is not None and item.reference != item.prompt.text:
                entry["request"] = item.reference  # the chat format's input is templated: the plain request too
            scores.append(entry)
        return scores

    def sides(self, state: State, items: Sequence[Item], responses: Sequence[Generation]) -> Dict[int, Dict[str, Any]]:
        """Per case id: its side of a case line (each input's score, keyed by metric; the case's Fluency)."""
        by_case: Dict[int, Dict[str, Any]] = {}
        for item, entry in zip(items, self.score(items, responses)):
            case_id, key = item.key
            by_case.setdefault(case_id, {})[key] = entry
        for case_id, side in by_case.items():
            side["fluency"] = case_fluency([side[k]["response"] for k in METRIC_KEYS])
        return by_case


def case_line(case: SafeEditCase, method: str, judge: str, pre: Dict[str, Any], post: Dict[str, Any],
              edit: Dict[str, Any]) -> Dict[str, Any]:
    """One cases.jsonl line."""
    return {"case_id": case.case_id, "index": case.index, "method": method, "judge": judge,
            "pre": pre, "post": post, "edit": edit}


def side_labels(side: Dict[str, Any]) -> List[float]:
    """The five labels of a case side, in METRIC_KEYS order."""
    return [side[k]["label"] for k in METRIC_KEYS]
