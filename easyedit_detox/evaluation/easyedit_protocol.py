"""`--generation easyedit`: responses generated the way EasyEdit-git's `test_safety_gen` generates them.

Restated from `easyeditor/evaluate/evaluate_utils.py` (`test_safety_gen`, EasyEdit commit 14cea82),
so that published numbers can be reproduced; the default protocol stays `greedy` (SAFEEDIT.md).
Point by point:
- the checkpoint's own generation config decides (LLaMA-2-chat's turns sampling on), with
  `max_new_tokens = max_output_length` and nothing else set; the run seeds torch, numpy and
  `random` with 42 once before its first generation, as importing EasyEdit's `safety_editor.py`
  does, and generates in EasyEdit's order (every case's vanilla responses first, then case by case
  the edit and its responses), so on the same hardware the sampled stream is EasyEdit's;
- with `max_length >= 1624` a case's five inputs go through `generate` as one left-padded batch,
  tokenized with `truncation=True` (the tokenizer's own `model_max_length`, cut on the right), and
  a response is the decoded row (special tokens skipped) minus its first `len(input) + 1` characters;
- below 1624 each input goes alone, its ids cut to their last `max_length - max_output_length`
  (the BOS included), and the response is the decoded text minus its first `len(input) + 1`
  characters, leading spaces stripped. (EasyEdit means to cut a shortened input's response after
  the overlap of input and output, but it tests the length of the already cut ids, so that search
  never runs: the response of a cut input is mostly empty, and judged 0.5.)
Unlike EasyEdit, the caller's tokenizer keeps its padding side (set only during the call), and
`token_type_ids`, which LLaMA's own tokenizers never return but `generate` refuses, are dropped.
"""

from __future__ import annotations

import random
from typing import List, Sequence

import torch

from easyedit_detox.core.devices import input_device
from .generation import Generation

LONG_CONTEXT = 1624
SEED = 42


def seed_like_easyedit(seed: int = SEED) -> None:
    """Seed torch, numpy and random as EasyEdit's `seed_everything(42)` does (rank 0)."""
    import numpy as np

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def _model_inputs(encoded) -> dict:
    return {k: v for k, v in encoded.items() if k != "token_type_ids"}


def easyedit_generate(model, tok, texts: Sequence[str], max_length: int, max_output_length: int) -> List[Generation]:
    """EasyEdit's responses to one case's inputs (see the module docstring)."""
    device = input_device(model)
    saved_side = tok.padding_side
    tok.padding_side = "left"
    try:
        with torch.no_grad():
            if max_length < LONG_CONTEXT:
                return [_one(model, tok, text, max_length, max_output_length, device) for text in texts]
            batch = _model_inputs(tok(list(texts), return_tensors="pt", padding=True, truncation=True).to(device))
            outputs = model.generate(**batch, max_new_tokens=max_output_length)
            decoded = [tok.decode(row, skip_special_tokens=True) for row in outputs]
            width = batch["input_ids"].shape[1]
            return [Generation(text=out[len(text) + 1:], input_tokens=int(mask.sum()),
                               new_tokens=int(outputs.shape[1] - width), truncated=False)
                    for text, out, mask in zip(texts, decoded, batch["attention_mask"])]
    finally:
        tok.padding_side = saved_side


def _one(model, tok, text: str, max_length: int, max_output_length: int, device) -> Generation:
    encoded = _model_inputs(tok([text], return_tensors="pt", padding=True, truncation=True).to(device))
    limit = max_length - max_output_length
    cut = encoded["input_ids"].shape[-1] > limit
    if cut:
        encoded = {k: v[:, -limit:] for k, v in encoded.items()}
    outputs = model.generate(**encoded, max_new_tokens=max_output_length)
    decoded = tok.decode(outputs[0], skip_special_tokens=True)
    response = decoded[len(text) + 1:].lstrip()  # EasyEdit's overlap branch cannot run (module docstring)
    width = encoded["input_ids"].shape[-1]
    return Generation(text=response, input_tokens=int(width), new_tokens=int(outputs.shape[1] - width), truncated=cut)
