"""This package's DINM beside EasyEdit-git's own, run from its code: the documented differences explain the whole gap."""

import copy
import os
import subprocess
import sys

import pytest
import torch.nn.functional as F

from dinm_reference import make_request
from easyedit_detox import apply_dinm_to_model
from test_dinm import SUFFIX, TEMPLATES, hparams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIT_ONLY = "runs EasyEdit-git's own DINM (models/dinm) and SafetyEditor, which PyPI's easyeditor does not have"


def cosine(a, b):
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


def their_hparams(layer, **values):
    from easyeditor.models.dinm import DINMHyperParams

    t = TEMPLATES["gpt2"]
    return DINMHyperParams(layers=[layer], num_steps=values.get("num_steps", 5), lr=values.get("lr", 5e-3),
                           weight_decay=0.0, kl_factor=0.1, norm_constraint=False, model_class="GPT2LMHeadModel",
                           tokenizer_class="GPT2TokenizerFast", suffix_system_prompt=SUFFIX, device="cpu",
                           alg_name="DINM", model_name="tiny-gpt2", max_length=2048, max_output_length=8, **t)


def deltas(model, before, names):
    params = dict(model.named_parameters())
    return {n: params[n].detach() - before[n] for n in names}


@pytest.mark.git_only(GIT_ONLY)
def test_easyedit_dinm_equals_ours_once_the_documented_differences_are_aligned(tiny_gpt2, safeedit_records):
    from easyeditor.models.dinm.dinm_main import apply_dinm_to_model as their_apply

    model, tok = tiny_gpt2
    tok.pad_token = tok.eos_token  # as EasyEdit's SafetyEditor sets it
    record = safeedit_records[18]  # a short one: their sequences are never cut, ours at max_length
    request = make_request(record, SUFFIX)
    layer = 2  # one layer for both: location and its reuse are separate differences (see the README)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    names = [n for n in before if n.startswith(f"transformer.h.{layer}.mlp.c_proj.")]
    theirs, ours, plain = copy.deepcopy(model), copy.deepcopy(model), copy.deepcopy(model)
    their_apply(theirs, tok, [request], their_hparams(layer), keep_original_weight=True)
    # Aligned: no KL gradient (constraint_grad: false), and their double space between prompt and target
    # (they join prompt + " " + " " + target) given to ours as a trailing space of the prompt. The GPT-2
    # tokenizer adds no BOS, so their labels (the target tokenized alone) hold no BOS here.
    aligned = dict(request, prompt=request["prompt"] + " ")
    h = hparams("gpt2", layers=[layer], num_steps=5, lr=5e-3, max_length=2048, constraint_grad=False)
    apply_dinm_to_model(ours, tok, [aligned], h)
    apply_dinm_to_model(plain, tok, [request], hparams("gpt2", layers=[layer], num_steps=5, lr=5e-3, max_length=2048))
    their_delta, our_delta, plain_delta = (deltas(m, before, names) for m in (theirs, ours, plain))
    assert set(names) == {f"transformer.h.{layer}.mlp.c_proj.weight", f"transformer.h.{layer}.mlp.c_proj.bias"}
    for name in names:
        assert their_delta[name].abs().max() > 0
        assert cosine(our_delta[name], their_delta[name]) >= 0.9999
    # Unaligned (the paper's objective, our sequences) the edits differ measurably: the differences matter.
    assert min(cosine(plain_delta[n], their_delta[n]) for n in names) < 0.9999


@pytest.mark.git_only(GIT_ONLY)
def test_easyedit_mode_runs_their_dinm_the_way_their_safety_editor_does(tiny_gpt2_dir, tmp_path):
    """EASYEDIT_DETOX_DINM=easyedit: easyeditor untouched; our SafetyEditor locates like theirs and reuses the layer."""
    code = f"""
import json, sys, yaml
import easyedit_detox
from easyeditor.util.alg_dict import ALG_DICT
import easyeditor
from easyeditor.models.dinm import apply_dinm_to_model as native
assert easyedit_detox.REGISTRATION == "untouched"
assert ALG_DICT["DINM"] is native and "DINM-detox" not in ALG_DICT and easyeditor.apply_dinm_to_model is native
from easyedit_detox.methods.hparams import load_hparams
from easyedit_detox import SafetyEditor
with open({os.path.join(ROOT, "hparams", "DINM", "gpt2-xl.yaml")!r}) as f:
    raw = yaml.safe_load(f)
raw.update(model_name={tiny_gpt2_dir!r}, device="cpu", model_class="GPT2LMHeadModel", tokenizer_class="GPT2TokenizerFast",
           max_length=1024, max_output_length=6, num_steps=2, lr=1e-2)
with open({str(tmp_path / "h.yaml")!r}, "w") as f:
    yaml.safe_dump(raw, f)
h = load_hparams({str(tmp_path / "h.yaml")!r})
assert type(h).__module__.startswith("easyeditor.models.dinm")  # their class, unchanged
editor = SafetyEditor.from_hparams(h)
records = json.load(open({os.path.join(ROOT, "easyedit_detox", "data", "safeedit_test_sample.json")!r}))[:2]
sfx = h.suffix_system_prompt
metrics, _, _ = editor.edit(editing_method="DINM", prompts=[r["adversarial prompt"] for r in records],
    prompts_with_systemPrompt=[r["adversarial prompt"] + " " + sfx for r in records],
    target_new=[r["safe generation"] for r in records], ground_truth=[r["unsafe generation"] for r in records],
    locality_inputs_with_systemPrompt={{"general knowledge constraint": {{
        "prompt": [r["knowledge constrain"]["prompt"] + " " + sfx for r in records],
        "ground_truth": [r["knowledge constrain"]["answer"] for r in records]}}}},
    keep_original_weight=True)
located = easyeditor.SafetyEditor._locate_toxic_layer
print(json.dumps([m["edit"]["layers"] for m in metrics]), h.layers)
"""
    env = dict(os.environ, EASYEDIT_DETOX_DINM="easyedit")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path), env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    layers_line = out.stdout.strip().splitlines()[-1]
    per_case, hparams_layers = layers_line.rsplit(" ", 1)
    import json

    per_case = json.loads(per_case)
    assert len(per_case) == 2 and per_case[0] == per_case[1]  # located for the first request, reused (as theirs)
    assert hparams_layers == "[]"  # the caller's hparams are not written to
