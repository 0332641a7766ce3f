"""The vanilla-response cache: a vanilla response depends only on what is in its key.

The key holds everything that can change a greedy response: the model (config, every weight's
exact digest, dtype, attention implementation, the end-of-sequence ids generation stops at), the
tokenizer (class, vocabulary, special tokens, padding side, chat template, how it encodes a probe
text), the transformers and torch versions, the device type, the generation protocol and the
batch size (in half precision a batch's composition can change a greedy response). Each entry is
further keyed by its prompt: text, budgets and whether special tokens are added.

Each cache is a folder of JSON-lines files named after the key; each process appends to its own
file, and every file with the key is read.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Any, Dict, Mapping, Optional

from easyedit_detox.core.files import default_cache_dir  # noqa: F401  (the runner reads it from here)
from easyedit_detox.core.weights import combined_digest
from easyedit_detox.core.devices import input_device
from .generation import Generation, Prompt

CACHE_FORMAT = 2


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def model_fingerprint(model, weight_digests: Mapping[str, str]) -> str:
    """What identifies the vanilla model's behaviour: its config, weights, dtype and stopping ids."""
    config = model.config.to_dict()
    for key in ("_name_or_path", "transformers_version"):
        config.pop(key, None)
    facts = {
        "config": config,
        "weights": combined_digest(weight_digests),
        "attn": getattr(model.config, "_attn_implementation", None),
        "eos": getattr(getattr(model, "generation_config", None), "eos_token_id", None),
    }
    return _sha(json.dumps(facts, sort_keys=True, default=str))


def tokenizer_fingerprint(tok) -> str:
    """What identifies a tokenizer's behaviour for generation."""
    vocab = tok.get_vocab()
    facts = {
        "class": type(tok).__name__,
        "vocab": _sha(json.dumps(sorted(vocab.items()), ensure_ascii=False)),
        "special": {k: str(v) for k, v in tok.special_tokens_map.items()},
        "special_ids": sorted(int(i) for i in tok.all_special_ids),
        "padding_side": tok.padding_side,
        "chat_template": getattr(tok, "chat_template", None),
        "probe": tok("Probe: a short text.").input_ids,  # BOS/EOS the tokenizer adds on its own
    }
    return _sha(json.dumps(facts, sort_keys=True, default=str))


def environment_facts(model) -> Dict[str, Any]:
    """Library versions and device type, which change numerics and therefore greedy responses."""
    import torch
    import transformers

    device = input_device(model)
    return {"transformers": transformers.__version__, "torch": torch.__version__, "device": device.type}


def prompt_key(prompt: Prompt) -> str:
    """The cache key of one prompt within a cache."""
    return _sha(json.dumps([prompt.text, prompt.max_new_tokens, prompt.max_input_tokens, prompt.add_special_tokens]))


class ResponseCache:
    """Vanilla responses on disk for one key (see the module docstring)."""

    def __init__(self, folder: str, key_facts: Mapping[str, Any], writer: str = "0"):
        facts = {"format": CACHE_FORMAT, **key_facts}
        self.key = _sha(json.dumps(facts, sort_keys=True, default=str))[:24]
        self.folder = os.path.join(folder, "vanilla")
        os.makedirs(self.folder, exist_ok=True)
        self.path = os.path.join(self.folder, f"{self.key}.{writer}.jsonl")
        self.entries: Dict[str, Generation] = {}
        self.hits = 0
        for path in sorted(glob.glob(os.path.join(self.folder, f"{self.key}.*.jsonl"))):
            self._read(path)

    def _read(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by an interrupted write: regenerate that one
                self.entries[row["key"]] = Generation(**row["generation"])

    def get(self, prompt: Prompt) -> Optional[Generation]:
        """The cached generation for `prompt`, or None."""
        found = self.entries.get(prompt_key(prompt))
        if found is not None:
            self.hits += 1
        return found

    def put(self, prompt: Prompt, generation: Generation) -> None:
        """Store `generation` for `prompt` (appended at once; a failed write only costs a regeneration later)."""
        key = prompt_key(prompt)
        self.entries[key] = generation
        line = json.dumps({"key": key, "generation": generation.__dict__}, ensure_ascii=False)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except OSError:
            pass  # the cache is an optimisation: a full disk must not stop the evaluation here
