"""EasyEdit's own methods (easyeditor's real hparams classes and apply functions) evaluated on SafeEdit, on the CPU."""

import json

import pytest
import torch
import yaml

from easyedit_detox.methods.hparams import load_hparams
from easyedit_detox.cli import main
from easyedit_detox.data.safeedit import SafeEditDataset
from easyedit_detox.evaluation.generation import GenerationSettings
from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate
from easyedit_detox.methods.session import UndoSession, generation_model
from easyedit_detox.toy import sample_path
from easyedit_detox.easyedit.upstream import GIT, flavour

TEMPLATES = {
    "llama": dict(rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight", layer_module_tmp="model.layers.{}",
                  mlp_module_tmp="model.layers.{}.mlp", attn_module_tmp="model.layers.{}.self_attn",
                  ln_f_module="model.norm", lm_head_module="lm_head", target_modules=["q_proj", "v_proj"]),
    "gpt2": dict(rewrite_module_tmp="transformer.h.{}.mlp.c_proj", layer_module_tmp="transformer.h.{}",
                 mlp_module_tmp="transformer.h.{}.mlp", attn_module_tmp="transformer.h.{}.attn",
                 ln_f_module="transformer.ln_f", lm_head_module="transformer.wte", target_modules=["c_attn"]),
}


def method_yaml(tmp_path, method, kind, model_dir, **changes):
    """An EasyEdit hparams YAML for `method` in the installed EasyEdit's format (git's FT/LoRA need one more key)."""
    t = TEMPLATES[kind]
    common = dict(alg_name=method, model_name=model_dir, device="cpu", layers=[2], num_steps=4, batch_size=1,
                  max_length=64, lr=5e-2, weight_decay=0, kl_factor=0, norm_constraint=False, model_parallel=False)
    if method == "FT":
        raw = dict(common, **{k: t[k] for k in ("rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp",
                                                "attn_module_tmp", "ln_f_module", "lm_head_module")})
        if flavour() == GIT:
            raw["objective_optimization"] = "target_new"
    else:
        raw = dict(common, layers=[], target_modules=t["target_modules"], rank=4, lora_alpha=16, lora_dropout=0.0)
        if flavour() == GIT:
            raw["lora_type"] = "adalora"
        else:
            raw.pop("model_parallel")  # PyPI's LoRAHyperParams has no such field and refuses unknown keys
    raw.update(changes)
    path = tmp_path / f"{method}-{kind}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def unchanged(model, before):
    return set(dict(model.named_parameters())) == set(before) and all(
        torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("method", ["FT", "LoRA"])
@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_method_edits_visibly_and_is_undone_exactly(method, kind, request, tmp_path):
    model, tok = request.getfixturevalue(f"tiny_{kind}")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # as the package's loader (and EasyEdit's BaseEditor) sets it for GPT-2
    h = load_hparams(method_yaml(tmp_path, method, kind, request.getfixturevalue(f"tiny_{kind}_dir")))
    assert type(h).__module__.startswith("easyeditor")  # easyeditor's own class
    case = SafeEditDataset(sample_path(), limit=1)[0]
    ids = tok(case.eval_inputs["DS"], return_tensors="pt")
    with torch.no_grad():
        vanilla_logits = model(**ids).logits
    before = snapshot(model)
    flags = (model.is_gradient_checkpointing, model.config.use_cache, [p.requires_grad for p in model.parameters()])
    editor = UndoSession(model, tok, h)
    with editor.edited(case.edit_request()) as edit:
        with torch.no_grad():
            edited_logits = edit.model(**ids).logits
        assert not torch.allclose(edited_logits, vanilla_logits, atol=1e-4)  # the edit changed the model
        if method == "FT":
            assert edit.in_place and edit.written and all(".2." in n for n in edit.written)
        else:
            assert not edit.in_place and type(edit.model).__name__.startswith("Peft")
    assert unchanged(model, before)
    assert (model.is_gradient_checkpointing, model.config.use_cache,
            [p.requires_grad for p in model.parameters()]) == flags
    assert not hasattr(model, "peft_config") and "lora" not in " ".join(n for n, _ in model.named_modules())


def test_a_lora_edit_is_the_same_whatever_the_callers_random_state_which_it_leaves_alone(tiny_llama, tiny_llama_dir,
                                                                                         tmp_path):
    """LoRA's adapter starts from random weights: each edit is seeded, so two runs edit alike (the demo's LoRA row
    once varied from run to run), and the caller's RNG goes on as if no edit had run."""
    model, tok = tiny_llama
    h = load_hparams(method_yaml(tmp_path, "LoRA", "llama", tiny_llama_dir, lora_dropout=0.1))
    case = SafeEditDataset(sample_path(), limit=1)[0]
    ids = tok(case.eval_inputs["DS"], return_tensors="pt")
    logits, draws = [], []
    for seed in (1, 2):
        torch.manual_seed(seed)
        with UndoSession(model, tok, h).edited(case.edit_request()) as edit, torch.no_grad():
            logits.append(generation_model(edit, model)(**ids).logits)  # eval mode, as the evaluation answers
        draws.append(torch.rand(3))
        torch.manual_seed(seed)
        assert torch.equal(draws[-1], torch.rand(3))  # the edit left the caller's random state as it was
    assert torch.equal(logits[0], logits[1])


@pytest.mark.parametrize("method", ["FT", "LoRA"])
def test_methods_run_through_evaluate_and_the_cli(method, tiny_llama, tiny_llama_dir, tmp_path, capsys):
    model, tok = tiny_llama
    path = method_yaml(tmp_path, method, "llama", tiny_llama_dir)
    before = snapshot(model)
    summary = evaluate(model, tok, load_hparams(path), sample_path(), str(tmp_path / "api"), limit=2,
                       settings=EvaluationSettings(cache_dir=str(tmp_path / "c"), progress=False, general_cases=0))
    assert unchanged(model, before)
    assert summary["method"] == method and summary["generation"]["max_output_length"] == 600  # SafeEdit's default
    with open(tmp_path / "api" / "cases.jsonl") as f:
        rows = [json.loads(line) for line in f]
    # Methods other than DINM see the plain inputs before and after.
    assert all(r["post"]["DS"]["input"] == r["pre"]["DS"]["input"] for r in rows)
    assert any(r["post"][k]["response"] != r["pre"][k]["response"] for r in rows for k in r["pre"] if k != "fluency")
    out = tmp_path / "cli"
    args = ["evaluate", "--hparams", path, "--data", sample_path(), "--out", str(out), "--limit", "2", "--no-progress",
            "--cache", str(tmp_path / "c"), "--general-cases", "0", "--max-length", "256", "--max-output-length", "8"]
    assert main(args) == 0
    with open(out / "summary.json") as f:
        on_disk = json.load(f)
    assert on_disk["generation"]["max_length"] == 256 and on_disk["generation"]["max_output_length"] == 8
    with open(out / "run.json") as f:
        assert json.load(f)["generation"]["max_output_length"] == 8
    assert f"{method} on" in capsys.readouterr().out


def test_hard_coded_cuda_is_scoped_to_the_call(tiny_llama, tiny_llama_dir, tmp_path):
    """PyPI's FT builds torch.device('cuda:0'); inside the edit it means the model's device, outside nothing changed."""
    import sys

    model, tok = tiny_llama
    h = load_hparams(method_yaml(tmp_path, "FT", "llama", tiny_llama_dir, device=0))
    editor = UndoSession(model, tok, h)
    with editor.edited(SafeEditDataset(sample_path(), limit=1)[0].edit_request()) as edit:
        assert edit.written
    module = sys.modules["easyeditor.models.ft.ft_main"]
    assert module.torch is torch and "to" not in torch.Tensor.__dict__
    assert h.device == 0  # the caller's hparams are not changed either


GIT_METHODS = {
    # EasyEdit-git's hparams/GRACE/llama-7b.yaml and hparams/WISE/llama-7b.yaml, on the tiny LLaMA's layer 2.
    "GRACE": dict(inner_params=["model.layers[2].mlp.down_proj.weight"], edit_lr=1.0, n_iter=10, eps=1.0,
                  dist_fn="euc", val_init="cold", val_train="sgd", val_reg="None", reg="early_stop",
                  replacement="replace_last", eps_expand="coverage", num_pert=8, dropout=0.0),
    "WISE": dict(mask_ratio=0.2, edit_lr=1.0, n_iter=10, norm_constraint=1.0, act_margin=[5.0, 20.0, 10.0],
                 act_ratio=0.88, save_freq=500, merge_freq=1000, merge_alg="ties", objective_optimization="only_label",
                 inner_params=["model.layers[2].mlp.down_proj.weight"], densities=0.53, weights=1.0, retrieve=True,
                 replay=False, model_parallel=False),
}


@pytest.mark.git_only("GRACE and WISE exist only in EasyEdit from git")
@pytest.mark.parametrize("method", sorted(GIT_METHODS))
def test_git_methods_are_evaluated_and_undone(method, tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    raw = dict(alg_name=method, model_name=tiny_llama_dir, device="cpu", **GIT_METHODS[method])
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(raw))
    h = load_hparams(str(tmp_path / "h.yaml"))
    before = snapshot(model)
    case = SafeEditDataset(sample_path(), limit=1)[0]
    ids = tok(case.eval_inputs["DS"], return_tensors="pt")["input_ids"]
    with torch.no_grad():
        vanilla = model(input_ids=ids).logits
    with UndoSession(model, tok, h).edited(case.edit_request()) as edit:
        assert not edit.in_place  # a wrapper layer: generated case by case, not row-wise
        with torch.no_grad():
            assert not torch.allclose(model(input_ids=ids).logits, vanilla, atol=1e-5)
    assert unchanged(model, before)
    summary = evaluate(model, tok, h, sample_path(), str(tmp_path / "o"), limit=2,
                       settings=EvaluationSettings(cache_dir=str(tmp_path / "c"), progress=False, general_cases=0,
                                                   batch_size=4),
                       generation=GenerationSettings(256, 8, batch_size=4))
    assert summary["method"] == method and summary["n_cases"] == 2
    assert unchanged(model, before)
