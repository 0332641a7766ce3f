"""Shared fixtures: tiny LLaMA- and GPT-2-shaped models with tokenizers trained offline on the sample.

The folders are built once per test session (`*_dir`); the `(model, tokenizer)` fixtures load them
afresh for every test through `from_pretrained`, so a test may edit its model without touching
another test's, and the loading code real checkpoints use is exercised.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from easyedit_detox import toy


def load_pair(folder):
    """A float32, eval-mode `(model, tokenizer)` loaded from `folder`, with the RNG seeded."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """Folder holding a tiny LLaMA (4 layers, width 64) and its tokenizer (BOS `<s>`, pad = EOS)."""
    return toy.save_tiny(str(tmp_path_factory.mktemp("tiny_llama")), "llama", seed=0)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """Folder holding a tiny GPT-2 (4 layers, width 64) and its tokenizer (no pad token)."""
    return toy.save_tiny(str(tmp_path_factory.mktemp("tiny_gpt2")), "gpt2", seed=0)


@pytest.fixture
def tiny_llama(tiny_llama_dir):
    """A fresh `(model, tokenizer)` pair loaded from `tiny_llama_dir`."""
    return load_pair(tiny_llama_dir)


@pytest.fixture
def tiny_gpt2(tiny_gpt2_dir):
    """A fresh `(model, tokenizer)` pair loaded from `tiny_gpt2_dir`."""
    return load_pair(tiny_gpt2_dir)


@pytest.fixture(scope="session")
def load_tiny():
    """The loader the `tiny_*` fixtures use, for tests that save a variant model into their own folder."""
    return load_pair


@pytest.fixture(scope="session")
def safeedit_records():
    """The bundled SafeEdit records (list of dicts)."""
    import json

    with open(toy.sample_path(), encoding="utf-8") as f:
        return json.load(f)
