"""`apply`: sequential edits saved as a model folder and as a patch; `patch apply/revert`; resume after an interrupt."""

import copy
import json
import os

import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer

from dinm_reference import make_request
from easyedit_detox import apply_dinm_to_model
from easyedit_detox.cli import main
from easyedit_detox.dinm.hparams import DINMHyperParams
from easyedit_detox.methods.session import UndoSession
from easyedit_detox.toy import sample_path
from test_cli import write_hparams
from test_dinm import SUFFIX


def load(folder):
    return AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()


def params(model):
    return dict(model.named_parameters())


def apply_args(hparams, out, *extra):
    return ["apply", "--hparams", hparams, "--data", sample_path(), "--no-progress", *extra]


def test_apply_saves_a_model_that_answers_as_the_edited_one_and_a_patch_that_turns_the_base_into_it(
        tiny_llama_dir, tmp_path, safeedit_records):
    h = write_hparams(tmp_path, tiny_llama_dir, num_steps=3, lr=5e-2)
    saved, patch = tmp_path / "detox", tmp_path / "detox.safetensors"
    assert main(apply_args(h, saved, "--limit", "5", "--save", str(saved), "--patch", str(patch))) == 0
    assert not [n for n in os.listdir(tmp_path) if "apply-state" in n]  # the state files are gone once done

    # In memory: five DINM edits, one after another, on the base model.
    base = load(tiny_llama_dir)
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    hparams = DINMHyperParams.from_hparams(h)
    edited = copy.deepcopy(base)
    for record in safeedit_records[:5]:
        apply_dinm_to_model(edited, tok, [make_request(record, SUFFIX)], hparams)
    reloaded = load(saved)
    assert all(torch.equal(p, params(edited)[n]) for n, p in reloaded.named_parameters())
    encoded = tok(safeedit_records[0]["adversarial prompt"] + " " + SUFFIX, return_tensors="pt")
    ids = {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
    with torch.no_grad():
        assert torch.equal(reloaded(**ids).logits, edited(**ids).logits)
        kwargs = dict(max_new_tokens=12, do_sample=False, pad_token_id=tok.eos_token_id)
        assert torch.equal(reloaded.generate(**ids, **kwargs), edited.generate(**ids, **kwargs))
    with open(os.path.join(tiny_llama_dir, "generation_config.json")) as f, open(saved / "generation_config.json") as g:
        assert json.load(f) == json.load(g)

    # The patch holds only the changed tensors, and puts them on / takes them off bit-exactly.
    changed = {n for n, p in edited.named_parameters() if not torch.equal(p, params(base)[n])}
    with safe_open(str(patch), "pt") as f:
        keys = set(f.keys())
        metadata = json.loads(f.metadata()["easyedit_detox.patch"])
    assert keys == {f"edited.{n}" for n in changed} | {f"base.{n}" for n in changed}
    assert metadata["method"] == "DINM" and metadata["record_ids"] == [0, 1, 2, 3, 4]
    assert main(["patch", "apply", "--model", tiny_llama_dir, "--patch", str(patch), "--out", str(tmp_path / "on")]) == 0
    on = load(tmp_path / "on")
    assert all(torch.equal(p, params(reloaded)[n]) for n, p in on.named_parameters())
    assert main(["patch", "revert", "--model", str(saved), "--patch", str(patch), "--out", str(tmp_path / "off")]) == 0
    off = load(tmp_path / "off")
    assert all(torch.equal(p, params(base)[n]) for n, p in off.named_parameters())


def test_patch_for_another_base_is_refused_in_one_line(tiny_llama_dir, tmp_path, capsys):
    from easyedit_detox import toy

    h = write_hparams(tmp_path, tiny_llama_dir, num_steps=2, layers=[1])
    patch = tmp_path / "p.safetensors"
    assert main(apply_args(h, None, "--cases", "3", "--patch", str(patch))) == 0
    other = toy.save_tiny(str(tmp_path / "other"), "llama", seed=1)
    capsys.readouterr()
    assert main(["patch", "apply", "--model", other, "--patch", str(patch), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "another base model" in err
    assert not (tmp_path / "x").exists()


def test_interrupted_apply_resumes_to_the_same_weights(tiny_llama_dir, tmp_path, monkeypatch):
    h = write_hparams(tmp_path, tiny_llama_dir, num_steps=2, lr=5e-2)
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert main(apply_args(h, whole, "--limit", "4", "--save", str(whole))) == 0
    calls = {"n": 0}
    real = UndoSession.keep

    def interrupted(self, request):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, request)

    monkeypatch.setattr(UndoSession, "keep", interrupted)
    assert main(apply_args(h, cut, "--limit", "4", "--save", str(cut))) == 130
    assert not cut.exists()
    with open(str(cut) + ".apply-state.json") as f:
        assert json.load(f)["done"] == 2
    monkeypatch.setattr(UndoSession, "keep", real)
    resumed = {"n": 0}

    def counting(self, request):
        resumed["n"] += 1
        return real(self, request)

    monkeypatch.setattr(UndoSession, "keep", counting)
    assert main(apply_args(h, cut, "--limit", "4", "--save", str(cut))) == 0
    assert resumed["n"] == 2  # only the edits not yet done
    a, b = load(whole), load(cut)
    assert all(torch.equal(p, params(b)[n]) for n, p in a.named_parameters())


def test_apply_needs_an_output_and_refuses_a_folder_it_did_not_write(tiny_llama_dir, tmp_path, capsys):
    h = write_hparams(tmp_path, tiny_llama_dir)
    assert main(apply_args(h, None, "--limit", "1")) == 2
    assert "--save" in capsys.readouterr().err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    assert main(apply_args(h, mine, "--limit", "1", "--save", str(mine))) == 2
    assert (mine / "notes.txt").read_text() == "keep me"
