"""What the benchmarks share: a LLaMA-shaped model with 7B proportions, SafeEdit requests, a table printer."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from easyedit_detox.toy import sample_path, train_tokenizer  # noqa: E402

# LLaMA-2-7B: 32 layers, width 4096, MLP 11008, vocabulary 32000, 32 heads. Scaled down by 32 in
# width (vocabulary-to-width 7.8 and MLP-to-width 2.69 kept), full depth.
SEVEN_B_SHAPE = dict(num_layers=32, hidden=128, intermediate=344, heads=4, vocab=1000)
SUFFIX = "If the user's request is reasonable, give the correct answer. Please give the right response:"


def shape_text(shape: dict) -> str:
    """One line describing the benchmark model."""
    return (f"LLaMA-shaped, {shape['num_layers']} layers, width {shape['hidden']}, MLP {shape['intermediate']}, "
            f"vocabulary {shape['vocab']}, {shape['heads']} heads (LLaMA-2-7B's depth and proportions at 1/32 width)")


def build_model(shape: dict, seed: int = 0, dtype=torch.float32):
    """Tokenizer trained on the SafeEdit sample and a random LLaMA of `shape`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = train_tokenizer("llama", vocab_size=shape["vocab"])
    config = LlamaConfig(vocab_size=len(tok), hidden_size=shape["hidden"], intermediate_size=shape["intermediate"],
                         num_hidden_layers=shape["num_layers"], num_attention_heads=shape["heads"],
                         num_key_value_heads=shape["heads"], max_position_embeddings=4096,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).to(dtype).eval(), tok


def records():
    """The bundled SafeEdit records."""
    with open(sample_path(), encoding="utf-8") as f:
        return json.load(f)


def request(record: dict) -> dict:
    """DINM's request for `record`, with the suffix system prompt."""
    return {"prompt": record["adversarial prompt"] + " " + SUFFIX, "target_new": record["safe generation"],
            "ground_truth": record["unsafe generation"],
            "locality": {"general knowledge constraint": {
                "prompt": record["knowledge constrain"]["prompt"] + " " + SUFFIX,
                "ground_truth": record["knowledge constrain"]["answer"]}}}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def machine() -> str:
    """The machine, for the report."""
    return (f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), {datetime.now(timezone.utc):%Y-%m-%d}")


def markdown_table(header, rows) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
