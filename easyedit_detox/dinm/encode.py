"""Token sequences for DINM's two loss terms (DINM.md section 3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch


@dataclass(frozen=True)
class EncodedPair:
    """Prompt ids followed by answer ids; the answer starts at `answer_start`."""

    input_ids: List[int]
    answer_start: int

    @property
    def answer_len(self) -> int:
        return len(self.input_ids) - self.answer_start


def encode_pair(tok, prompt: str, answer: str, max_length: int) -> EncodedPair:
    """Encode (x, y) as tok(x) + tok(" " + y) without specials, dropping prompt ids from the left."""
    prompt_ids = list(tok(prompt).input_ids)
    answer_ids = list(tok(" " + answer, add_special_tokens=False).input_ids)
    if not answer_ids:
        raise ValueError(f"the answer {answer!r} encodes to no tokens")
    if len(answer_ids) >= max_length:
        # Keep one prompt token so the first answer token has something to be predicted from.
        answer_ids = answer_ids[: max_length - 1]
    overflow = len(prompt_ids) + len(answer_ids) - max_length
    if overflow > 0:
        # Harmful questions stand at the end of attack prompts: keep the end.
        prompt_ids = prompt_ids[overflow:]
    if not prompt_ids:
        raise ValueError(f"the prompt {prompt!r} encodes to no tokens")
    return EncodedPair(prompt_ids + answer_ids, len(prompt_ids))


@dataclass
class Batch:
    """Right-padded sequences with the positions whose predictions the losses read."""

    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    loss_mask: torch.Tensor  # [B, T] bool: position t predicts token t+1, an answer token
    targets: torch.Tensor  # [B, T] the token each loss position predicts (0 elsewhere)

    def to(self, device) -> "Batch":
        return Batch(*(t.to(device) for t in (self.input_ids, self.attention_mask, self.loss_mask, self.targets)))

    @property
    def lengths(self) -> torch.Tensor:
        return self.attention_mask.sum(dim=1)


def collate(pairs: Sequence[EncodedPair], pad_id: int) -> Batch:
    """Pad `pairs` on the right into one batch."""
    width = max(len(p.input_ids) for p in pairs)
    n = len(pairs)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((n, width), dtype=torch.long)
    loss_mask = torch.zeros((n, width), dtype=torch.bool)
    targets = torch.zeros((n, width), dtype=torch.long)
    for row, pair in enumerate(pairs):
        ids = torch.tensor(pair.input_ids, dtype=torch.long)
        length = len(pair.input_ids)
        input_ids[row, :length] = ids
        attention_mask[row, :length] = 1
        loss_mask[row, pair.answer_start - 1 : length - 1] = True
        targets[row, : length - 1] = ids[1:]
    targets = targets * loss_mask
    return Batch(input_ids, attention_mask, loss_mask, targets)


def pad_token_id(tok) -> int:
    """The id to pad with: the tokenizer's pad token, else its EOS (GPT-2 has no pad token), else 0."""
    for candidate in (tok.pad_token_id, tok.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
