"""SafetyEditor called the way EasyEdit-git's run_safety_editing.py calls its own."""

import os

import pytest
import torch
import yaml

from easyedit_detox import DINMHyperParams, SafetyEditor
from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation.generation import GenerationSettings
from test_generation import manual_greedy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GENERAL = ("test input of only harmful question", "test input of other attack prompt input",
           "test input of other question input", "test input of other questions and attack prompts")


def hparams_for(tmp_path, folder):
    with open(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(model_name=folder, device="cpu", tokenizer_class="AutoTokenizer", max_length=2048, max_output_length=10,
               lr=5e-2, num_steps=4)
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(raw))
    return DINMHyperParams.from_hparams(str(tmp_path / "h.yaml"))


def easyedit_style_batch(editor, hparams, records, keep):
    """As in EasyEdit's examples/run_safety_editing.py (test_DINM), for several records at once."""
    suffix = hparams.suffix_system_prompt
    general = [[r["generalization test"][k] for k in GENERAL] for r in records]
    return editor.edit(
        editing_method="DINM",
        prompts=[r["adversarial prompt"] for r in records],
        prompts_with_systemPrompt=[r["adversarial prompt"] + " " + suffix for r in records],
        target_new=[r["safe generation"] for r in records],
        ground_truth=[r["unsafe generation"] for r in records],
        locality_inputs={"general knowledge constraint": {
            "prompt": [r["knowledge constrain"]["prompt"] for r in records],
            "ground_truth": [r["knowledge constrain"]["answer"] for r in records]}},
        locality_inputs_with_systemPrompt={"general knowledge constraint": {
            "prompt": [r["knowledge constrain"]["prompt"] + " " + suffix for r in records],
            "ground_truth": [r["knowledge constrain"]["answer"] for r in records]}},
        general_prompt=general,
        general_prompt_with_systemPrompt=[[g + " " + suffix for g in gs] for gs in general],
        keep_original_weight=keep, case_id=[r["id"] for r in records])


def greedy_text(model, tok, text, max_new):
    """The expected response, by an argmax loop written in the test (not the package's generation code)."""
    ids = manual_greedy(model, tok, text, max_new)
    return tok.decode([t for t in ids if t != tok.eos_token_id], skip_special_tokens=True).strip()


def test_safety_editor_loads_by_class_and_answers_like_easyedit(tiny_llama_dir, tmp_path, safeedit_records):
    h = hparams_for(tmp_path, tiny_llama_dir)
    editor = SafetyEditor.from_hparams(h)
    assert type(editor.model).__name__ == "LlamaForCausalLM" and next(editor.model.parameters()).device.type == "cpu"
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    record = safeedit_records[2]
    metrics, edited, weights_copy = easyedit_style_batch(editor, h, [record], keep=True)
    assert len(metrics) == 1 and metrics[0]["case_id"] == record["id"]
    keys = ["DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ"]
    assert list(metrics[0]["pre"]) == keys and list(metrics[0]["post"]) == keys
    model, tok = editor.model, editor.tok
    assert metrics[0]["pre"]["DS"] == greedy_text(model, tok, record["adversarial prompt"], 10)
    assert metrics[0]["pre"]["DG_onlyQ"] == greedy_text(model, tok, record["generalization test"][GENERAL[0]], 10)
    assert metrics[0]["requested_rewrite"]["prompt"].endswith(h.suffix_system_prompt)
    layer = metrics[0]["edit"]["layers"][0]
    assert set(weights_copy) == {f"model.layers.{layer}.mlp.down_proj.weight"}
    assert all(torch.equal(p, before[n]) for n, p in editor.model.named_parameters())  # restored


def test_post_responses_come_from_the_edited_model(tiny_llama, tiny_llama_dir, tmp_path, safeedit_records):
    import copy

    from dinm_reference import make_request
    from easyedit_detox import apply_dinm_to_model

    model, tok = tiny_llama
    h = hparams_for(tmp_path, tiny_llama_dir)
    reference = copy.deepcopy(model)
    record = safeedit_records[1]
    metrics, _, _ = easyedit_style_batch(SafetyEditor(h, model=model, tok=tok), h, [record], keep=True)
    apply_dinm_to_model(reference, tok, [make_request(record, h.suffix_system_prompt)], h)
    suffixed = record["adversarial prompt"] + " " + h.suffix_system_prompt
    assert metrics[0]["post"]["DS"] == greedy_text(reference, tok, suffixed, 10)


def test_safety_editor_keeps_edits_without_keep_original_weight(tiny_llama, tmp_path, safeedit_records, tiny_llama_dir):
    model, tok = tiny_llama
    h = hparams_for(tmp_path, tiny_llama_dir)
    editor = SafetyEditor(h, model=model, tok=tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics, edited, weights_copy = easyedit_style_batch(editor, h, [safeedit_records[0]], keep=False)
    assert edited is model and weights_copy == {}
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == 1 and changed[0].endswith("mlp.down_proj.weight")


def test_mismatched_lists_are_refused(tiny_llama, tmp_path, safeedit_records, tiny_llama_dir):
    model, tok = tiny_llama
    h = hparams_for(tmp_path, tiny_llama_dir)
    editor = SafetyEditor(h, model=model, tok=tok)
    with pytest.raises(UserError, match="target_new has 2 item"):
        editor.edit(editing_method="DINM", prompts=["a"], prompts_with_systemPrompt=["a s"], target_new=["x", "y"])


def test_safety_editor_runs_easyeditors_ft_and_undoes_it(tiny_llama, tiny_llama_dir, tmp_path, safeedit_records):
    """Any method of the comparison runs through SafetyEditor: here easyeditor's FT, with its own hparams class."""
    from easyedit_detox.methods.hparams import load_hparams
    from test_methods import method_yaml

    model, tok = tiny_llama
    h = load_hparams(method_yaml(tmp_path, "FT", "llama", tiny_llama_dir, lr=1e-1, num_steps=8))
    editor = SafetyEditor(h, model=model, tok=tok, generation=GenerationSettings(2048, 10))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    record = safeedit_records[3]
    general = [record["generalization test"][k] for k in GENERAL]
    metrics, _, _ = editor.edit(editing_method="FT", prompts=[record["adversarial prompt"]],
                                prompts_with_systemPrompt=[record["adversarial prompt"] + " ignored for FT"],
                                target_new=[record["safe generation"]], ground_truth=[record["unsafe generation"]],
                                general_prompt=[general], keep_original_weight=True)
    assert metrics[0]["requested_rewrite"]["prompt"] == record["adversarial prompt"]  # plain inputs for FT
    assert metrics[0]["pre"]["DS"] == greedy_text(model, tok, record["adversarial prompt"], 10)
    assert metrics[0]["post"] != metrics[0]["pre"]
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def easyedit_texts(model, tok, texts, max_new):
    """EasyEdit-git's test_safety_gen for max_length >= 1624, restated: one left-padded batch, the decoded row minus
    the input's characters and one more."""
    side = tok.padding_side
    tok.padding_side = "left"
    batch = tok(list(texts), return_tensors="pt", padding=True)
    tok.padding_side = side
    out = model.generate(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], max_new_tokens=max_new)
    return [tok.decode(row, skip_special_tokens=True)[len(text) + 1:] for text, row in zip(texts, out)]


def test_safety_editor_generates_with_easyedits_protocol_when_asked(tiny_llama, tiny_llama_dir, tmp_path,
                                                                   safeedit_records):
    model, tok = tiny_llama
    model.generation_config.do_sample = False
    h = hparams_for(tmp_path, tiny_llama_dir)
    record = safeedit_records[3]
    inputs = [record["adversarial prompt"]] + [record["generalization test"][k] for k in GENERAL]
    expected = easyedit_texts(model, tok, inputs, 10)
    editor = SafetyEditor.from_hparams(h, model=model, tok=tok, protocol="easyedit")
    metrics, _, _ = easyedit_style_batch(editor, h, [record], keep=True)
    assert list(metrics[0]["pre"].values()) == expected
    greedy = SafetyEditor.from_hparams(h, model=model, tok=tok)  # the default stays greedy, new tokens only
    assert easyedit_style_batch(greedy, h, [record], keep=True)[0][0]["pre"]["DS"] == greedy_text(
        model, tok, record["adversarial prompt"], 10)


@pytest.mark.git_only("compares with EasyEdit-git's own test_safety_gen, which PyPI's easyeditor does not have")
def test_safety_editor_easyedit_protocol_samples_as_easyedit_git(tiny_llama, tiny_llama_dir, tmp_path,
                                                               safeedit_records):
    from easyeditor.evaluate.evaluate_utils import test_safety_gen

    model, tok = tiny_llama
    model.generation_config.do_sample, model.generation_config.top_k = True, 20
    h = hparams_for(tmp_path, tiny_llama_dir)
    record = safeedit_records[1]
    inputs = [record["adversarial prompt"]] + [record["generalization test"][k] for k in GENERAL]
    torch.manual_seed(42)
    import numpy as np
    import random

    np.random.seed(42)
    random.seed(42)
    side = tok.padding_side
    theirs = test_safety_gen(model, tok, inputs, "cpu", h.max_length, h.max_output_length)
    tok.padding_side = side
    editor = SafetyEditor.from_hparams(h, model=model, tok=tok, protocol="easyedit")
    metrics, _, _ = easyedit_style_batch(editor, h, [record], keep=True)
    assert list(metrics[0]["pre"].values()) == theirs


def test_safety_editor_refuses_an_unknown_protocol_and_easyedit_with_chat(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    h = hparams_for(tmp_path, tiny_llama_dir)
    with pytest.raises(UserError, match="protocol 'sampled' is unknown"):
        SafetyEditor.from_hparams(h, model=model, tok=tok, protocol="sampled")
    with pytest.raises(UserError, match="prompt_format='raw'"):
        SafetyEditor.from_hparams(h, model=model, tok=tok, protocol="easyedit", prompt_format="chat")
