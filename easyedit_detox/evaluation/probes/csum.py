"""CSum (XSum ROUGE-1 as OpenCompass's Xsum_gen computes it) as a general-performance probe."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ..general import csum
from ..general.prompting import render
from ..prompts import Generation, Prompt
from .base import GeneralContext, GeneralProbe, Item, State, register_probe


@register_probe
class CSumProbe(GeneralProbe):
    """The first K XSum documents, greedy; the ROUGE-1 F of the output's first line against the reference."""

    name = "CSum"
    option = "--csum"
    option_help = ("XSum file for CSum: OpenCompass's JSONL (dialogue, summary), or Hugging Face xsum records "
                   "(document, summary) as JSON, JSONL or parquet")
    summary_key = "CSum"

    def __init__(self, path: str, items: List[csum.CSumItem], tokenizer, max_length: int):
        self.path = path
        rendered = [render(tokenizer, csum.csum_prompt(it.document), csum.CSUM_BOT_PREFIX) for it in items]
        self.format = rendered[0][2] if rendered else None
        budget = max_length - csum.CSUM_MAX_NEW_TOKENS
        self._items = [Item(self.name, i, Prompt(text, csum.CSUM_MAX_NEW_TOKENS, budget, special), it.summary)
                       for i, (it, (text, special, _)) in enumerate(zip(items, rendered))]

    @classmethod
    def build(cls, context: GeneralContext) -> Optional["CSumProbe"]:
        path = context.options.get("csum")
        if not path:
            return None
        return cls(path, csum.load_csum(path, limit=context.items_per_probe), context.tokenizer, context.max_length)

    def items(self, state: State) -> List[Item]:
        return list(self._items)

    def score(self, items: Sequence[Item], responses: Sequence[Generation]) -> List[float]:
        return [csum.rouge1(csum.postprocess(g.text), item.reference) for item, g in zip(items, responses)]

    def describe(self) -> Dict[str, Any]:
        return {"data": self.path, "items": len(self._items), "prompt_format": self.format,
                "max_new_tokens": csum.CSUM_MAX_NEW_TOKENS,
                "scorer": "rouge-score ROUGE-1 F (HF evaluate defaults); deterministic mean, not OpenCompass's "
                          "bootstrap median"}
