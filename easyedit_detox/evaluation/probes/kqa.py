"""KQA (TriviaQA accuracy as OpenCompass's triviaqa_gen computes it) as a general-performance probe."""

from __future__ import annotations

from typing import List, Sequence

from .opencompass import kqa
from ..generation_types import Generation
from .base import DatasetProbe, Item, register_probe


@register_probe
class KQAProbe(DatasetProbe):
    """The first K TriviaQA questions, greedy, 50 new tokens; 1 when an answer alias is in the processed output."""

    name = "KQA"
    option = "--kqa"
    option_help = ("TriviaQA file for KQA: OpenCompass's trivia-dev.qa.csv, or Hugging Face trivia_qa records "
                   "as JSON, JSONL or parquet")
    summary_key = "KQA"
    max_new_tokens = kqa.KQA_MAX_NEW_TOKENS
    scorer = "OpenCompass TriviaQAEvaluator (restated)"

    @staticmethod
    def load(path: str, limit: int) -> List[kqa.KQAItem]:
        return kqa.load_kqa(path, limit=limit)

    def turns(self, record: kqa.KQAItem):
        return kqa.kqa_prompt(record.question), kqa.KQA_BOT_PREFIX, list(record.answers)

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[float]:
        return [1.0 if kqa.is_correct(g.text, item.reference) else 0.0 for item, g in zip(items, responses)]
