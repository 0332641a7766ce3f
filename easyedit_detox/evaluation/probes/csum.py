"""CSum (XSum ROUGE-1 as OpenCompass's Xsum_gen computes it) as a general-performance probe."""

from __future__ import annotations

from typing import List, Sequence

from .opencompass import csum
from ..generation_types import Generation
from .base import DatasetProbe, Item, register_probe


@register_probe
class CSumProbe(DatasetProbe):
    """The first K XSum documents, greedy; the ROUGE-1 F of the output's first line against the reference."""

    name = "CSum"
    option = "--csum"
    option_help = ("XSum file for CSum: OpenCompass's JSONL (dialogue, summary), or Hugging Face xsum records "
                   "(document, summary) as JSON, JSONL or parquet")
    summary_key = "CSum"
    max_new_tokens = csum.CSUM_MAX_NEW_TOKENS
    scorer = ("rouge-score ROUGE-1 F (HF evaluate's defaults); the deterministic mean, not OpenCompass's "
              "bootstrap median")

    @staticmethod
    def load(path: str, limit: int) -> List[csum.CSumItem]:
        return csum.load_csum(path, limit=limit)

    def turns(self, record: csum.CSumItem):
        return csum.csum_prompt(record.document), csum.CSUM_BOT_PREFIX, record.summary

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[float]:
        return [csum.rouge1(csum.postprocess(g.text), item.reference) for item, g in zip(items, responses)]
