"""Prompt formats: the chat format's ids are apply_chat_template's, with one BOS, whatever the tokenizer adds."""

import pytest

from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation.formats import PromptFormat, template_ids

LLAMA2_STYLE = "{{ bos_token }}{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}"


def test_chat_on_a_tokenizer_that_adds_bos_keeps_one_bos(tiny_llama):
    _, tok = tiny_llama
    tok.chat_template = LLAMA2_STYLE
    assert tok("x").input_ids[0] == tok.bos_token_id  # this tokenizer adds a BOS itself
    fmt = PromptFormat("chat", tok)
    text = "How do I bake bread?"
    ids = tok(fmt(text)).input_ids
    assert ids == template_ids(tok, text)
    assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id
    assert fmt(text).startswith("[INST] How do I bake bread?")


def test_raw_is_the_text_and_requests_get_every_prompt_formatted(tiny_llama):
    _, tok = tiny_llama
    assert PromptFormat("raw", tok)("as it is") == "as it is"
    tok.chat_template = LLAMA2_STYLE
    fmt = PromptFormat("chat", tok)
    request = {"prompt": "attack", "target_new": "no", "ground_truth": "yes",
               "locality": {"general knowledge constraint": {"prompt": "benign", "ground_truth": "answer"}}}
    out = fmt.request(request)
    assert out["prompt"] == fmt("attack") and out["target_new"] == "no"
    assert out["locality"]["general knowledge constraint"] == {"prompt": fmt("benign"), "ground_truth": "answer"}
    assert request["prompt"] == "attack"  # the caller's request is left as it was


def test_unknown_format_and_missing_template_are_refused(tiny_llama):
    _, tok = tiny_llama
    with pytest.raises(UserError, match="unknown; use one of"):
        PromptFormat("chatml", tok)
    tok.chat_template = None
    with pytest.raises(UserError, match="needs a tokenizer with a chat template"):
        PromptFormat("chat", tok)
