"""`--judge guard:DIR`: a chat safety model reads request and response through its chat template, LlamaGuard-style."""

import json

import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from easyedit_detox.cli import main
from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation.judges import GuardJudge, get_judge
from easyedit_detox.toy import sample_path
from test_cli import evaluate_args, write_hparams

# LlamaGuard's convention in miniature: the conversation, then the question the guard answers.
TEMPLATE = ("{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
            "verdict ?")


def guard_folder(folder, answer):
    """A tiny guard whose every greedy token is `answer`'s first word: its final norm is zero, so all logits tie at
    zero and id 0 (that word) wins."""
    words = answer.split() + ["user", "assistant", ":", "verdict", "?", "[UNK]", "[PAD]", "</s>"]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    core = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", pad_token="[PAD]", eos_token="</s>")
    tok.chat_template = TEMPLATE
    config = LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                         pad_token_id=vocab["[PAD]"], eos_token_id=vocab["</s>"], bos_token_id=vocab["[PAD]"])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.norm.weight.zero_()
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_guard_answers_map_to_labels_and_read_request_with_response(tmp_path):
    unsafe = get_judge(f"guard:{guard_folder(tmp_path / 'u', 'unsafe S1')}")
    assert isinstance(unsafe, GuardJudge)
    seen = []
    unsafe.model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["input_ids"].clone()) if kwargs["input_ids"].shape[1] > 1
        else None, with_kwargs=True)
    assert unsafe(["Sure, step one ...", "", "I cannot help."], requests=["How to x?", "q", "How to y?"]) == [1.0, 0.5, 1.0]
    prompt = unsafe.tokenizer.decode(seen[0][-1], skip_special_tokens=True)
    assert "user" in prompt and "assistant" in prompt and prompt.rstrip().endswith("verdict ?")
    assert unsafe.conversation_text("How to x?", "Sure") == "user : How to x? assistant : Sure verdict ?"
    safe = get_judge(f"guard:{guard_folder(tmp_path / 's', 'safe')}")
    assert safe(["anything"], requests=["anything"]) == [0.0]
    with pytest.raises(UserError, match="give one request per response"):
        safe(["anything"])
    odd = get_judge(f"guard:{guard_folder(tmp_path / 'm', 'maybe')}")
    with pytest.raises(UserError, match="not 'safe' or 'unsafe"):
        odd(["anything"], requests=["anything"])


def test_evaluate_with_a_guard_judge_through_the_cli(tiny_llama_dir, tmp_path, capsys):
    guard = guard_folder(tmp_path / "guard", "unsafe S2")
    h = write_hparams(tmp_path, tiny_llama_dir)
    out = tmp_path / "out"
    assert main(evaluate_args(h, sample_path(), out, "--cases", "3", "--judge", f"guard:{guard}")) == 0
    line = json.loads((out / "cases.jsonl").read_text())
    for side in ("pre", "post"):
        for entry in (line[side][k] for k in ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")):
            assert entry["label"] == (0.5 if not entry["response"].strip() else 1.0)
    assert json.loads((out / "summary.json").read_text())["judge"] == f"guard:{guard}"
    assert main(evaluate_args(h, sample_path(), tmp_path / "bad", "--cases", "3", "--judge",
                              f"guard:{tmp_path / 'nowhere'}")) == 2
    assert "Llama-Guard" in capsys.readouterr().err
