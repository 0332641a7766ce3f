"""Generation as SAFEEDIT.md describes it: greedy, left padding, cut from the left, new tokens only."""

import json
import logging
import os
import shutil

import pytest
import torch

from easyedit_detox import toy
from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation import generation as gen_module
from easyedit_detox.evaluation.generation import (
    GenerationSettings,
    context_window,
    generate_responses,
)


def texts_of_varied_length(records):
    """Five inputs from the sample whose token counts differ, short ones and long ones mixed."""
    r0, r1 = records[0], records[1]
    return [
        r0["adversarial prompt"],
        r0["question"],
        r1["generalization test"]["test input of other attack prompt input"],
        "Hello",
        r1["question"],
    ]


def manual_greedy(model, tokenizer, text, max_new):
    """Greedy continuation by hand: argmax of the last position's logits, one token at a time."""
    ids = tokenizer(text, return_tensors="pt").input_ids
    new = []
    with torch.no_grad():
        for _ in range(max_new):
            nxt = int(model(ids).logits[0, -1].argmax())
            new.append(nxt)
            if nxt == tokenizer.eos_token_id:
                break
            ids = torch.cat([ids, torch.tensor([[nxt]])], dim=1)
    return new


def record_generate_inputs(model):
    """Wrap `model.generate` so each call's input_ids are kept in the returned list."""
    seen = []
    original = model.generate

    def wrapper(*args, **kwargs):
        seen.append(kwargs["input_ids"].clone())
        return original(*args, **kwargs)

    model.generate = wrapper
    return seen


# --- settings and context window -------------------------------------------------------------


def test_settings_validate():
    s = GenerationSettings(max_length=2048, max_output_length=600)
    assert s.batch_size == 8 and s.max_input_length == 1448
    for bad in [dict(max_length=0, max_output_length=1), dict(max_length=10, max_output_length=-1),
                dict(max_length=10, max_output_length=2, batch_size=0),
                dict(max_length=10.5, max_output_length=2), dict(max_length=True, max_output_length=2)]:
        with pytest.raises(UserError, match="positive integer"):
            GenerationSettings(**bad)
    with pytest.raises(UserError, match="max_output_length .* must be smaller than max_length"):
        GenerationSettings(max_length=300, max_output_length=300)


def test_context_window(tiny_llama, tiny_gpt2):
    assert context_window(tiny_llama[0]) == 2048
    gpt2 = toy.build_tiny_model("gpt2", tiny_gpt2[1], max_positions=64)
    assert context_window(gpt2) == 64
    assert context_window(object()) is None


# --- the recipe ------------------------------------------------------------------------------


def test_greedy_equals_manual_argmax(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    text = safeedit_records[0]["question"]
    [out] = generate_responses(model, tok, [text], GenerationSettings(256, 12))
    expected = manual_greedy(model, tok, text, 12)
    assert out.new_tokens == len(expected)
    assert out.input_tokens == len(tok(text).input_ids)
    assert out.truncated is False
    kept = [t for t in expected if t != tok.eos_token_id]
    assert out.text == tok.decode(kept, skip_special_tokens=True).strip()
    assert out.text  # a random model still writes something, so the comparison is not vacuous


def test_batched_equals_one_at_a_time(tiny_llama, tiny_gpt2, safeedit_records):
    texts = texts_of_varied_length(safeedit_records)
    for model, tok in (tiny_llama, tiny_gpt2):
        batched = generate_responses(model, tok, texts, GenerationSettings(2048, 16, batch_size=8))
        single = [generate_responses(model, tok, [t], GenerationSettings(2048, 16, batch_size=1))[0]
                  for t in texts]
        assert batched == single


def test_output_order_is_input_order(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    texts = texts_of_varied_length(safeedit_records)
    seen = record_generate_inputs(model)
    outs = generate_responses(model, tok, texts, GenerationSettings(2048, 8, batch_size=2))
    assert [o.input_tokens for o in outs] == [len(tok(t).input_ids) for t in texts]
    # Batches are formed from length-sorted inputs, at most 2 rows each, each no wider than its longest row.
    lengths = sorted(len(tok(t).input_ids) for t in texts)
    widths = [s.shape[1] for s in seen]
    assert widths == sorted(widths) and set(widths) <= set(lengths) and widths[-1] == lengths[-1]
    assert all(s.shape[0] <= 2 for s in seen) and sum(s.shape[0] for s in seen) == len(texts)
    for text, out in zip(texts, outs):
        assert generate_responses(model, tok, [text], GenerationSettings(2048, 8))[0] == out


def test_short_and_long_inputs_do_not_share_a_batch(tiny_llama, safeedit_records):
    """A case's short question is not padded to its 1,000-token attack prompt: padding would cost more than the text."""
    model, tok = tiny_llama
    r = safeedit_records[1]
    short = [r["question"], safeedit_records[0]["question"], "Hello"]
    long = [r["generalization test"]["test input of other attack prompt input"],
            r["generalization test"]["test input of other attack prompt input"] + " Please answer."]
    lengths = {t: len(tok(t).input_ids) for t in short + long}
    assert max(lengths[t] for t in short) * 4 < min(lengths[t] for t in long)  # the premise
    seen = record_generate_inputs(model)
    outs = generate_responses(model, tok, [long[0], short[0], long[1], short[1], short[2]],
                              GenerationSettings(2048, 4, batch_size=32))
    assert [s.shape for s in seen] == [(3, max(lengths[t] for t in short)), (2, max(lengths[t] for t in long))]
    assert [o.input_tokens for o in outs] == [lengths[t] for t in (long[0], short[0], long[1], short[1], short[2])]


def test_length_batches_close_a_batch_when_padding_would_outweigh_text():
    from easyedit_detox.evaluation.generation import length_batches

    # Worked by hand (lengths include the new tokens): 4 x 983 padded tokens against 1,287 real ones is too
    # much padding, 3 x 134 against 304 is not; equal lengths split only at the batch size.
    assert length_batches([0, 1, 2, 3, 4], [40, 130, 134, 983, 991], 32) == [[0, 1, 2], [3, 4]]
    assert length_batches([0, 1, 2, 3, 4], [500] * 5, 2) == [[0, 1], [2, 3], [4]]
    assert length_batches([0, 1], [1, 60], 8) == [[0, 1]]  # a few tokens of padding per row are always fine
    assert length_batches([], [], 8) == []


def test_left_truncation_keeps_bos_and_the_end(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    text = safeedit_records[0]["adversarial prompt"]
    full = tok(text).input_ids
    assert full[0] == tok.bos_token_id and len(full) > 60
    seen = record_generate_inputs(model)
    [out] = generate_responses(model, tok, [text], GenerationSettings(max_length=50, max_output_length=10))
    [sent] = seen
    ids = sent[0].tolist()
    assert len(ids) == 40 and out.input_tokens == 40 and out.truncated is True
    assert ids[0] == tok.bos_token_id
    assert ids[1:] == full[-39:]  # the last tokens: the harmful question at the end survives
    assert tok.truncation_side == "right"


def test_short_context_model_does_not_crash(tiny_gpt2, load_tiny, safeedit_records, tmp_path, caplog):
    _, tok = tiny_gpt2
    folder = str(tmp_path / "gpt2_64")
    toy.build_tiny_model("gpt2", tok, max_positions=64).save_pretrained(folder)
    tok.save_pretrained(folder)
    model, tok = load_tiny(folder)
    long_text = safeedit_records[0]["generalization test"]["test input of other attack prompt input"]
    assert len(tok(long_text).input_ids) > 64

    # EasyEdit's GPT-2-XL case: max_length above the context window.
    outs = generate_responses(model, tok, [long_text, "Hi"], GenerationSettings(2048, 40))
    assert outs[0].truncated is True and outs[0].input_tokens == 64 - 40
    assert outs[0].input_tokens + outs[0].new_tokens <= 64
    assert outs[1].truncated is False and outs[1].input_tokens == len(tok("Hi").input_ids)

    # Not even the response fits: it is shortened, with one warning however many calls.
    caplog.set_level(logging.WARNING, logger=gen_module.__name__)
    gen_module._warned_short_context.clear()
    for _ in range(2):
        [out] = generate_responses(model, tok, [long_text], GenerationSettings(2048, 100))
        assert out.truncated is True and out.input_tokens == 1
        assert out.new_tokens <= 63
    warnings = [r for r in caplog.records if "context window" in r.getMessage()]
    assert len(warnings) == 1


def test_checkpoint_sampling_settings_are_ignored(tiny_llama_dir, tiny_llama, load_tiny, safeedit_records,
                                                  tmp_path):
    texts = texts_of_varied_length(safeedit_records)
    settings = GenerationSettings(2048, 16)
    greedy = generate_responses(*tiny_llama, texts, settings)

    folder = str(tmp_path / "sampling")
    shutil.copytree(tiny_llama_dir, folder)
    path = os.path.join(folder, "generation_config.json")
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    config.update(do_sample=True, temperature=3.0, top_k=0, top_p=1.0, num_beams=1, max_new_tokens=2)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(config, f)
    model, tok = load_tiny(folder)
    assert model.generation_config.do_sample is True
    for seed in (1, 2):
        torch.manual_seed(seed)
        assert generate_responses(model, tok, texts, settings) == greedy


def test_generation_stops_at_eos_per_sequence(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    texts = [safeedit_records[0]["question"], safeedit_records[1]["question"]]
    settings = GenerationSettings(2048, 12)
    free = [manual_greedy(model, tok, t, 12) for t in texts]
    # Make a token the first response writes (not its first) an end-of-sequence id, as chat
    # checkpoints list extra EOS ids in their generation config; the second response must go on.
    k = next(i for i in range(1, len(free[0])) if free[0][i] not in free[0][:i])
    stop = free[0][k]
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    outs = generate_responses(model, tok, texts, settings)
    assert outs[0].new_tokens == k + 1
    assert outs[0].text == tok.decode(free[0][:k], skip_special_tokens=True).strip()
    if stop not in free[1]:
        assert outs[1].new_tokens == 12
        assert outs[1].text == tok.decode(free[1], skip_special_tokens=True).strip()


def test_tokenizer_is_left_as_it_was(tiny_llama, tiny_gpt2, safeedit_records):
    texts = texts_of_varied_length(safeedit_records)
    for model, tok in (tiny_llama, tiny_gpt2):
        before = (tok.padding_side, tok.truncation_side, tok.pad_token, tok.pad_token_id)
        outs = generate_responses(model, tok, texts, GenerationSettings(100, 8, batch_size=3))
        assert any(o.truncated for o in outs)
        assert (tok.padding_side, tok.truncation_side, tok.pad_token, tok.pad_token_id) == before
    assert tiny_gpt2[1].pad_token is None


def test_empty_input_list(tiny_llama):
    assert generate_responses(*tiny_llama, [], GenerationSettings(64, 8)) == []


def test_rows_with_their_own_budgets_share_a_batch(tiny_llama, safeedit_records):
    """Prompts with different token budgets in one batch each get the response they would get alone."""
    from easyedit_detox.evaluation.generation import Prompt, generate

    model, tok = tiny_llama
    # Inputs of similar length, so that padding does not split them into several batches.
    texts = [r["question"] for r in safeedit_records[:5]]
    budgets = [3, 12, 7, 12, 5]
    prompts = [Prompt(t, b, 2048 - b) for t, b in zip(texts, budgets)]
    seen = record_generate_inputs(model)
    together = generate(model, tok, prompts, batch_size=8)
    assert len(seen) == 1  # one call for all five
    for text, budget, out in zip(texts, budgets, together):
        expected = manual_greedy(model, tok, text, budget)
        assert out.new_tokens == len(expected) <= budget
        assert out.text == tok.decode([t for t in expected if t != tok.eos_token_id], skip_special_tokens=True).strip()
