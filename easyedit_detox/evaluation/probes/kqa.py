"""KQA (TriviaQA accuracy as OpenCompass's triviaqa_gen computes it) as a general-performance probe."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..general import kqa
from ..general.prompting import render
from ..prompts import Generation, Prompt
from .base import GeneralContext, GeneralProbe, Item, State, register_probe


@register_probe
class KQAProbe(GeneralProbe):
    """The first K TriviaQA questions, greedy, 50 new tokens; 1 when an answer alias is in the processed output."""

    name = "KQA"
    option = "--kqa"
    option_help = ("TriviaQA file for KQA: OpenCompass's trivia-dev.qa.csv, or Hugging Face trivia_qa records "
                   "as JSON, JSONL or parquet")
    summary_key = "KQA"

    def __init__(self, path: str, items: List[kqa.KQAItem], tokenizer, max_length: int):
        self.path = path
        rendered = [render(tokenizer, kqa.kqa_prompt(it.question), kqa.KQA_BOT_PREFIX) for it in items]
        self.format = rendered[0][2] if rendered else None
        budget = max_length - kqa.KQA_MAX_NEW_TOKENS
        self._items = [Item(self.name, i, Prompt(text, kqa.KQA_MAX_NEW_TOKENS, budget, special), list(it.answers))
                       for i, (it, (text, special, _)) in enumerate(zip(items, rendered))]

    @classmethod
    def build(cls, context: GeneralContext) -> Optional["KQAProbe"]:
        path = context.options.get("kqa")
        if not path:
            return None
        return cls(path, kqa.load_kqa(path, limit=context.items_per_probe), context.tokenizer, context.max_length)

    def items(self, state: State) -> List[Item]:
        return list(self._items)

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[float]:
        return [1.0 if kqa.is_correct(g.text, item.reference) else 0.0 for item, g in zip(items, responses)]

    def describe(self) -> Dict[str, Any]:
        return {"data": self.path, "items": len(self._items), "prompt_format": self.format,
                "max_new_tokens": kqa.KQA_MAX_NEW_TOKENS, "scorer": "OpenCompass TriviaQAEvaluator (restated)"}
