"""SafetyEditor called the way EasyEdit-git's run_safety_editing.py calls its own."""

import os

import torch
import yaml

from easyedit_detox import DINMHyperParams
from easyedit_detox.bridge.safety_editor import SafetyEditor
from easyedit_detox.evaluation.generation import GenerationSettings, generate_responses

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hparams_for(tmp_path, folder):
    with open(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(model_name=folder, device="cpu", tokenizer_class="AutoTokenizer", max_length=320, max_output_length=10,
               lr=5e-2, num_steps=4)
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(raw))
    return DINMHyperParams.from_hparams(str(tmp_path / "h.yaml"))


def easyedit_style_call(editor, hparams, data, keep):
    """As in EasyEdit's examples/run_safety_editing.py (test_DINM)."""
    suffix = hparams.suffix_system_prompt
    general = [data["generalization test"][k] for k in (
        "test input of only harmful question", "test input of other attack prompt input",
        "test input of other question input", "test input of other questions and attack prompts")]
    return editor.edit(
        editing_method="DINM",
        prompts=[data["adversarial prompt"]],
        prompts_with_systemPrompt=[data["adversarial prompt"] + " " + suffix],
        target_new=[data["safe generation"]],
        ground_truth=[data["unsafe generation"]],
        locality_inputs={"general knowledge constraint": {
            "prompt": [data["knowledge constrain"]["prompt"]], "ground_truth": [data["knowledge constrain"]["answer"]]}},
        locality_inputs_with_systemPrompt={"general knowledge constraint": {
            "prompt": [data["knowledge constrain"]["prompt"] + " " + suffix],
            "ground_truth": [data["knowledge constrain"]["answer"]]}},
        general_prompt=[general],
        general_prompt_with_systemPrompt=[[g + " " + suffix for g in general]],
        keep_original_weight=keep, case_id=[data["id"]])


def test_safety_editor_loads_by_class_and_answers_like_easyedit(tiny_llama_dir, tmp_path, safeedit_records):
    h = hparams_for(tmp_path, tiny_llama_dir)
    editor = SafetyEditor.from_hparams(h)
    assert type(editor.model).__name__ == "LlamaForCausalLM" and next(editor.model.parameters()).device.type == "cpu"
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    record = safeedit_records[2]
    metrics, edited, weights_copy = easyedit_style_call(editor, h, record, keep=True)
    assert len(metrics) == 1 and metrics[0]["case_id"] == record["id"]
    keys = ["DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ"]
    assert list(metrics[0]["pre"]) == keys and list(metrics[0]["post"]) == keys
    settings = GenerationSettings(h.max_length, h.max_output_length)
    vanilla = generate_responses(editor.model, editor.tok, [record["adversarial prompt"]], settings)[0].text
    assert metrics[0]["pre"]["DS"] == vanilla
    assert metrics[0]["requested_rewrite"]["prompt"].endswith(h.suffix_system_prompt)
    assert set(weights_copy) == {f"model.layers.{metrics[0]['edit']['layers'][0]}.mlp.down_proj.weight"}
    assert all(torch.equal(p, before[n]) for n, p in editor.model.named_parameters())  # restored


def test_safety_editor_keeps_edits_without_keep_original_weight(tiny_llama, tmp_path, safeedit_records, tiny_llama_dir):
    model, tok = tiny_llama
    h = hparams_for(tmp_path, tiny_llama_dir)
    editor = SafetyEditor(h, model=model, tok=tok)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics, edited, weights_copy = easyedit_style_call(editor, h, safeedit_records[0], keep=False)
    assert edited is model and weights_copy == {}
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert len(changed) == 1 and changed[0].endswith("mlp.down_proj.weight")
