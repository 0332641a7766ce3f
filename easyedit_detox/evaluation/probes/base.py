"""What every probe is: items to answer in a model state, a prompt format and budget for each, and a scorer.

The runner (runner.py) never knows what a probe scores: for each model state it asks every probe
for its items, generates all of them in shared batches, and hands each probe back its responses.
A probe never calls the model. (lm-evaluation-harness's evaluator works the same way: tasks build
requests, the evaluator runs them through the model, tasks process the results.)

Every probe registers itself with `register_probe` (`PROBES`). SafeEdit's (safeedit.py) scores each of a
case's five inputs; the runner pairs a case's vanilla and edited answers into cases.jsonl. The
general-performance probes (KQA, CSum, over-refusal; `GENERAL_PROBES`) are each one file in this folder:
the CLI offers its `option`, the runner runs it, its lines go to general.jsonl and its percentage into
the summary's pre and post.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Type, Union

from easyedit_detox.data.safeedit import SafeEditCase
from ..generation_types import Generation, Prompt

VANILLA = "vanilla"
# The one edited state of the global protocol (evaluate --train): the model detoxified from the training records.
DETOXIFIED = "detoxified"


@dataclass(frozen=True)
class State:
    """A model state the probes answer in: the vanilla model, one case's edit, or n sequential edits."""

    label: Union[str, int]  # "vanilla", the edited case's id, or "after N edits" (general.jsonl's "state")
    cases: Tuple[SafeEditCase, ...]  # the SafeEdit cases whose inputs this state answers
    suffix: Optional[str] = None  # appended to SafeEdit inputs (DINM's suffix system prompt after an edit)
    general: bool = False  # whether the general-performance probes answer in this state
    excluded_ids: Tuple[int, ...] = ()  # records whose edits the model holds (benign prompts avoid them)

    @property
    def is_vanilla(self) -> bool:
        return self.label == VANILLA


@dataclass(frozen=True)
class Item:
    """One input a probe wants answered."""

    probe: str
    key: Union[Tuple[int, str], int]  # (case_id, metric) for SafeEdit; the item's index for the general probes
    prompt: Prompt
    reference: Any = None  # KQA: the answers; CSum: the reference summary; else None


@dataclass
class ProbeContext:
    """What probes are built from: the run's data, generation limits, judge, prompt format and options."""

    cases: Sequence[SafeEditCase]  # the records general probes may draw from (benign requests)
    max_length: int
    tokenizer: Any
    judge: Any
    items_per_probe: int = 0
    options: Dict[str, Any] = field(default_factory=dict)
    device: Any = "cpu"  # the evaluated model's: a probe's own judge model runs beside it
    prompt_format: Callable[[str], str] = str  # the run's (formats.py): a plain request text -> the model's input
    max_output_length: int = 0  # SafeEdit's new-token budget (general probes set their own)


class Probe:
    """A probe: the items to answer in a model state, and one score per answered item."""

    name: str = ""

    @classmethod
    def build(cls, context: ProbeContext) -> Optional["Probe"]:
        """The probe for this run, or None when it does not run (e.g. its data file was not given)."""
        raise NotImplementedError

    def items(self, state: State) -> List[Item]:
        """The items to answer in `state`."""
        raise NotImplementedError

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[Any]:
        """One score per item."""
        raise NotImplementedError

    def describe(self) -> Dict[str, Any]:
        """Plain facts about this probe for summary.json (data, prompt format, budget, scorer)."""
        return {}


class GeneralProbe(Probe):
    """A general-performance probe: the same items in the vanilla state and in edited states, each scored in [0, 1]."""

    option: Optional[str] = None  # its command-line option (e.g. "--kqa"), None when it always runs
    option_help: str = ""
    summary_key: str = ""  # its percentage in the summary's pre/post

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[float]:
        """One score per item (KQA 0/1, CSum ROUGE-1 in [0, 1], over-refusal 0 answered / 1 refused)."""
        raise NotImplementedError


def items_digest(items: Sequence["Item"]) -> str:
    """A digest of the items' model inputs, in order: two runs with the same digest asked the same things."""
    import hashlib

    text = "\n\x00".join(item.prompt.text for item in items)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class DatasetProbe(GeneralProbe):
    """A general probe over a data file given on the command line: the same items, rendered once, in every state.

    Subclasses say where the file comes from (`option`), how to read it (`load`), how an item becomes
    the HUMAN text, BOT prefix and reference of OpenCompass's template (`turns`), the new-token
    budget (`max_new_tokens`) and how to score a response (`score`).
    """

    max_new_tokens: int = 0
    scorer: str = ""

    def __init__(self, path: str, records: List[Any], tokenizer, max_length: int):
        from .opencompass.prompting import render

        self.path = path
        self.format = None
        self._items = []
        for i, record in enumerate(records):
            human, bot_prefix, reference = self.turns(record)
            text, special, self.format = render(tokenizer, human, bot_prefix)
            prompt = Prompt(text, self.max_new_tokens, max_length - self.max_new_tokens, special)
            self._items.append(Item(self.name, i, prompt, reference))

    @classmethod
    def build(cls, context: ProbeContext) -> Optional["DatasetProbe"]:
        path = context.options.get(cls.option.lstrip("-").replace("-", "_"))
        if not path:
            return None
        return cls(path, cls.load(path, context.items_per_probe), context.tokenizer, context.max_length)

    @staticmethod
    def load(path: str, limit: int) -> List[Any]:
        """The first `limit` records of the file."""
        raise NotImplementedError

    def turns(self, record) -> Tuple[str, str, Any]:
        """(HUMAN text, BOT prefix, reference) of one record."""
        raise NotImplementedError

    def items(self, state: State) -> List[Item]:
        return list(self._items)

    def describe(self) -> Dict[str, Any]:
        return {"data": self.path, "items": len(self._items), "prompt_format": self.format,
                "max_new_tokens": self.max_new_tokens, "scorer": self.scorer, "items_sha256": items_digest(self._items)}


PROBES: Dict[str, Type[Probe]] = {}
GENERAL_PROBES: Dict[str, Type[GeneralProbe]] = {}  # the general-performance ones among PROBES


def register_probe(cls: Type[Probe]) -> Type[Probe]:
    """Class decorator adding a probe (by its `name`) to the ones the runner and CLI know."""
    if not cls.name or cls.name in PROBES:
        raise ValueError(f"probe name {cls.name!r} is empty or already registered")
    PROBES[cls.name] = cls
    if issubclass(cls, GeneralProbe):
        GENERAL_PROBES[cls.name] = cls
    return cls


def general_line(state: State, item: Item, response: Generation, score: float) -> Dict[str, Any]:
    """One general.jsonl line."""
    return {"state": state.label, "probe": item.probe, "index": item.key, "input": item.prompt.text,
            "response": response.text, "reference": item.reference, "score": score}
