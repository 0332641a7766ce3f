"""Tiny, offline models and tokenizers for the demo, the tests and the CPU benchmarks.

Nothing here downloads anything: a byte-level BPE is trained on the bundled SafeEdit records and
a LLaMA- or GPT-2-shaped model is built from its transformers config with random weights. Saved
with `save_pretrained`, they load back through the same code paths real checkpoints use.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from typing import Iterable, List

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    GPT2TokenizerFast,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

SAMPLE_FILE = "safeedit_test_sample.json"


def sample_path() -> str:
    """Path of the bundled SafeEdit sample (first 30 test records, CC BY-NC-SA 4.0)."""
    return str(resources.files("easyedit_detox") / "data" / SAMPLE_FILE)


def sample_texts(path: str | None = None) -> List[str]:
    """Every string field of the SafeEdit records at `path` (default: the bundled sample)."""
    with open(path or sample_path(), encoding="utf-8") as f:
        records = json.load(f)
    texts: List[str] = []

    def walk(value):
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    for record in records:
        walk(record)
    return texts


def train_tokenizer(kind: str = "llama", texts: Iterable[str] | None = None, vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on `texts`, shaped like a LLaMA (BOS added) or GPT-2 one."""
    if kind not in ("llama", "gpt2"):
        raise ValueError(f"Unknown tokenizer kind {kind!r}. Available: 'llama', 'gpt2'.")
    texts = list(texts) if texts is not None else sample_texts()
    specials = ["<unk>", "<s>", "</s>"] if kind == "llama" else ["<|endoftext|>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>" if kind == "llama" else None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(texts, trainer=trainer)
    if kind == "llama":
        bos = bpe.token_to_id("<s>")
        bpe.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>", pad_token="</s>"
        )
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    return GPT2TokenizerFast(
        tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>"
    )


def tiny_config(kind: str, tokenizer, num_layers: int = 4, hidden: int = 64, intermediate: int = 128,
                heads: int = 4, max_positions: int = 2048):
    """A transformers config for a tiny LLaMA or GPT-2 matching `tokenizer`'s vocabulary."""
    vocab = len(tokenizer)
    if kind == "llama":
        return LlamaConfig(
            vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate,
            num_hidden_layers=num_layers, num_attention_heads=heads, num_key_value_heads=heads,
            max_position_embeddings=max_positions, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
    if kind == "gpt2":
        return GPT2Config(
            vocab_size=vocab, n_embd=hidden, n_inner=intermediate, n_layer=num_layers, n_head=heads,
            n_positions=max_positions, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    raise ValueError(f"Unknown model kind {kind!r}. Available: 'llama', 'gpt2'.")


def build_tiny_model(kind: str, tokenizer, seed: int = 0, **shape):
    """A randomly initialised tiny causal LM (seeded), in eval mode."""
    config = tiny_config(kind, tokenizer, **shape)
    torch.manual_seed(seed)
    model = (LlamaForCausalLM if kind == "llama" else GPT2LMHeadModel)(config)
    return model.eval()


def save_tiny(folder: str, kind: str = "llama", seed: int = 0, **shape) -> str:
    """Train a tokenizer, build a tiny model and save both to `folder`; returns the folder."""
    tokenizer = train_tokenizer(kind)
    model = build_tiny_model(kind, tokenizer, seed=seed, **shape)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    if kind == "gpt2":
        # GPT2Tokenizer (the slow class PyPI's BaseEditor loads for names with "gpt") reads
        # vocab.json and merges.txt, which save_pretrained of the fast class does not write.
        tokenizer.backend_tokenizer.model.save(folder)
    return folder


def train_sentencepiece_tokenizer(folder: str, texts: Iterable[str] | None = None, vocab_size: int = 800):
    """A SentencePiece `LlamaTokenizer` (the slow class LLaMA-2 checkpoints use) trained on `texts`."""
    import io

    import sentencepiece as spm
    from transformers import LlamaTokenizer

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(texts) if texts is not None else sample_texts()), model_writer=buffer,
        vocab_size=vocab_size, model_type="bpe", byte_fallback=True, character_coverage=1.0,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, minloglevel=2)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "tokenizer.model")
    with open(path, "wb") as f:
        f.write(buffer.getvalue())
    # from_pretrained, not LlamaTokenizer(vocab_file=...): transformers 5's LlamaTokenizer is tokenizers-backed and
    # ignores vocab_file (it encodes everything to []); from_pretrained converts tokenizer.model in both.
    return LlamaTokenizer.from_pretrained(folder, legacy=True, add_bos_token=True)


def save_tiny_sentencepiece_llama(folder: str, seed: int = 0, **shape) -> str:
    """Save a tiny LLaMA with a SentencePiece LlamaTokenizer to `folder`; returns the folder."""
    tokenizer = train_sentencepiece_tokenizer(folder)
    tokenizer.pad_token = tokenizer.eos_token
    model = build_tiny_model("llama", tokenizer, seed=seed, **shape)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
