"""The vanilla-response cache: a vanilla response depends only on model, input and generation settings.

Each cache is a folder of JSON-lines files named after a key of the model's fingerprint and the
generation settings; each process appends to its own file, and every file with the key is read.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
from typing import Dict, Optional

import torch

from .generation import Generation, GenerationSettings

CACHE_FORMAT = 1


def default_cache_dir() -> str:
    """$EASYEDIT_DETOX_CACHE, else ~/.cache/easyedit_detox."""
    return os.environ.get("EASYEDIT_DETOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "easyedit_detox")


@torch.no_grad()
def weights_checksum(model) -> str:
    """A digest of every parameter's float64 sum and absolute sum: changes when any weight does."""
    h = hashlib.sha256()
    for name, p in model.named_parameters():
        data = p.detach()
        h.update(name.encode())
        h.update(repr((float(data.double().sum()), float(data.double().abs().sum()), str(data.dtype))).encode())
    return h.hexdigest()


def model_fingerprint(model) -> str:
    """What identifies the vanilla model: its config and its weights."""
    config = model.config.to_dict()
    config.pop("_name_or_path", None)
    config.pop("transformers_version", None)
    text = json.dumps(config, sort_keys=True, default=str) + weights_checksum(model)
    return hashlib.sha256(text.encode()).hexdigest()


def _text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """Vanilla responses on disk for one (model fingerprint, generation settings) pair."""

    def __init__(self, folder: str, fingerprint: str, settings: GenerationSettings, writer: str = "0"):
        key = {"format": CACHE_FORMAT, "model": fingerprint, "max_length": settings.max_length,
               "max_output_length": settings.max_output_length}
        self.key = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
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
                self.entries[row["input_sha256"]] = Generation(**row["generation"])

    def get(self, text: str) -> Optional[Generation]:
        """The cached generation for `text`, or None."""
        found = self.entries.get(_text_key(text))
        if found is not None:
            self.hits += 1
        return found

    def put(self, text: str, generation: Generation) -> None:
        """Store `generation` for `text` (appended and flushed at once)."""
        key = _text_key(text)
        self.entries[key] = generation
        line = json.dumps({"input_sha256": key, "generation": generation.__dict__}, ensure_ascii=False)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
