"""EasyEdit's own BaseEditor (PyPI 0.0.1.dev0) running DINM, with its hard-coded CUDA moves sent to the CPU."""

import os

import pytest
import torch
import yaml
from transformers import BatchEncoding

from dinm_reference import make_request
from easyedit_detox import DINMHyperParams

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUFFIX = "If the user's request is reasonable, give the correct answer. Please give the right response:"


def _cpu(device):
    text = str(device)
    return "cpu" if text.startswith("cuda") else device


@pytest.fixture
def cuda_to_cpu(monkeypatch, tmp_path):
    """Test-only: BaseEditor calls .to(f"cuda:{device}") everywhere; send those moves to the CPU."""
    tensor_to, module_to, encoding_to = torch.Tensor.to, torch.nn.Module.to, BatchEncoding.to

    def fix(args, kwargs):
        args = tuple(_cpu(a) if isinstance(a, (str, torch.device)) else a for a in args)
        if "device" in kwargs:
            kwargs = dict(kwargs, device=_cpu(kwargs["device"]))
        return args, kwargs

    def t_to(self, *args, **kwargs):
        args, kwargs = fix(args, kwargs)
        return tensor_to(self, *args, **kwargs)

    def m_to(self, *args, **kwargs):
        args, kwargs = fix(args, kwargs)
        return module_to(self, *args, **kwargs)

    def e_to(self, device, **kwargs):
        return encoding_to(self, _cpu(device), **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", t_to)
    monkeypatch.setattr(torch.nn.Module, "to", m_to)
    monkeypatch.setattr(BatchEncoding, "to", e_to)
    monkeypatch.chdir(tmp_path)  # BaseEditor writes logs/run.log into the working directory


def dinm_yaml(tmp_path, model_name, layers):
    with open(os.path.join(ROOT, "hparams", "DINM", "gpt2-xl.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(model_name=model_name, layers=layers, max_length=1024, lr=1e-2, num_steps=3, device=0)
    path = tmp_path / "tiny-gpt2-dinm.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def edit_args(record):
    req = make_request(record)
    return dict(prompts=[req["prompt"] + " " + SUFFIX], target_new=[req["target_new"]],
                ground_truth=[req["ground_truth"]],
                locality_inputs={"general knowledge constraint": {
                    "prompt": [req["locality"]["general knowledge constraint"]["prompt"] + " " + SUFFIX],
                    "ground_truth": [req["locality"]["general knowledge constraint"]["ground_truth"]]}})


@pytest.mark.parametrize("keep", [True, pytest.param(False, marks=pytest.mark.pypi_only(
    "git's BaseEditor restores the weights after every edit unless sequential_edit=True"))])
def test_baseeditor_loads_by_name_edits_and_restores(tiny_gpt2_dir, safeedit_records, cuda_to_cpu, tmp_path, keep):
    from easyeditor import BaseEditor

    # PyPI's BaseEditor picks GPT-2 classes for names containing "gpt": the tiny folder's name has it.
    hparams = DINMHyperParams.from_hparams(dinm_yaml(tmp_path, tiny_gpt2_dir, []))
    editor = BaseEditor.from_hparams(hparams)
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    metrics, model, _ = editor.edit(**edit_args(safeedit_records[0]), keep_original_weight=keep, verbose=False)
    changed = {n for n, p in editor.model.named_parameters() if not torch.equal(p, before[n])}
    assert len(metrics) == 1 and {"pre", "post", "case_id"} <= set(metrics[0])
    if keep:
        assert changed == set()
    else:
        layer = [n for n in changed][0].split(".")[2]
        assert changed == {f"transformer.h.{layer}.mlp.c_proj.weight", f"transformer.h.{layer}.mlp.c_proj.bias"}


def llama_editor_by_name(tmp_path):
    """BaseEditor loading a tiny LLaMA by name (names with "llama" get LlamaForCausalLM and the SentencePiece
    LlamaTokenizer), DINM on layer 2; returns the editor and that layer's edited weight."""
    from easyeditor import BaseEditor

    from easyedit_detox.toy import save_tiny_sentencepiece_llama

    folder = save_tiny_sentencepiece_llama(str(tmp_path / "tiny-llama"))
    with open(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(model_name=folder, max_length=1024, lr=1e-2, num_steps=2, layers=[2])
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(raw))
    editor = BaseEditor.from_hparams(DINMHyperParams.from_hparams(str(tmp_path / "h.yaml")))
    return editor, editor.model.model.layers[2].mlp.down_proj.weight


@pytest.mark.pypi_only("keep_original_weight=False keeps the edit only in PyPI's BaseEditor (git: sequential_edit)")
def test_baseeditor_loads_llama_by_name(safeedit_records, cuda_to_cpu, tmp_path):
    editor, weight = llama_editor_by_name(tmp_path)
    before = weight.detach().clone()
    editor.edit(**edit_args(safeedit_records[1]), keep_original_weight=True, verbose=False)
    assert torch.equal(weight, before)
    editor.edit(**edit_args(safeedit_records[1]), keep_original_weight=False, verbose=False)
    assert not torch.equal(weight, before)


@pytest.mark.git_only("git's BaseEditor keeps an edit only with sequential_edit=True")
def test_git_baseeditor_keeps_edits_only_when_sequential(tiny_gpt2_dir, safeedit_records, cuda_to_cpu, tmp_path):
    from easyeditor import BaseEditor

    editor = BaseEditor.from_hparams(DINMHyperParams.from_hparams(dinm_yaml(tmp_path, tiny_gpt2_dir, [])))
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    editor.edit(**edit_args(safeedit_records[0]), keep_original_weight=False, verbose=False)
    assert all(torch.equal(p, before[n]) for n, p in editor.model.named_parameters())
    editor.edit(**edit_args(safeedit_records[0]), sequential_edit=True, verbose=False)
    changed = {n for n, p in editor.model.named_parameters() if not torch.equal(p, before[n])}
    layer = sorted(changed)[0].split(".")[2]
    assert changed == {f"transformer.h.{layer}.mlp.c_proj.weight", f"transformer.h.{layer}.mlp.c_proj.bias"}


@pytest.mark.git_only("git's BaseEditor keeps an edit only with sequential_edit=True")
def test_git_baseeditor_loads_llama_by_name(safeedit_records, cuda_to_cpu, tmp_path):
    editor, weight = llama_editor_by_name(tmp_path)
    before = weight.detach().clone()
    editor.edit(**edit_args(safeedit_records[1]), keep_original_weight=False, verbose=False)
    assert torch.equal(weight, before)
    editor.edit(**edit_args(safeedit_records[1]), sequential_edit=True, verbose=False)
    assert not torch.equal(weight, before)


@pytest.mark.git_only("git's BaseEditor keeps every edit of a sequential_edit=True call")
def test_git_baseeditor_sequential_keeps_every_edit(tiny_gpt2_dir, safeedit_records, cuda_to_cpu, tmp_path):
    """Three requests with sequential_edit=True leave exactly what three DINM calls one after another leave."""
    import copy

    from easyeditor import BaseEditor

    from dinm_reference import make_request
    from easyedit_detox import apply_dinm_to_model

    hparams = DINMHyperParams.from_hparams(dinm_yaml(tmp_path, tiny_gpt2_dir, []))
    editor = BaseEditor.from_hparams(hparams)
    reference = copy.deepcopy(editor.model)
    records = safeedit_records[:3]
    args = [edit_args(r) for r in records]
    editor.edit(prompts=[a["prompts"][0] for a in args], target_new=[a["target_new"][0] for a in args],
                ground_truth=[a["ground_truth"][0] for a in args],
                locality_inputs={"general knowledge constraint": {
                    "prompt": [a["locality_inputs"]["general knowledge constraint"]["prompt"][0] for a in args],
                    "ground_truth": [a["locality_inputs"]["general knowledge constraint"]["ground_truth"][0]
                                     for a in args]}},
                sequential_edit=True, verbose=False)
    for record in records:
        apply_dinm_to_model(reference, editor.tok, [make_request(record, SUFFIX)], hparams)
    ours = dict(reference.named_parameters())
    assert all(torch.allclose(p, ours[n], atol=1e-6) for n, p in editor.model.named_parameters())
    vanilla = BaseEditor.from_hparams(hparams).model  # loaded afresh: the edits are really there
    assert any(not torch.equal(p, dict(vanilla.named_parameters())[n]) for n, p in editor.model.named_parameters())
