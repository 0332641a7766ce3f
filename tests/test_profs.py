"""ProFS held to its contract (the issue's statement, restated below in float64 NumPy) on a tiny LLaMA and GPT-2,
registered with easyeditor and run by its BaseEditor, and evaluated through the CLI like any other method."""

import json

import numpy as np
import pytest
import torch
import yaml

from dinm_reference import make_request
from test_baseeditor import cuda_to_cpu  # noqa: F401  (a fixture)
from easyedit_detox.cli import main
from easyedit_detox.core.errors import HyperParamsError, RequestError
from easyedit_detox.methods.profs import ProFSHyperParams, apply_profs_to_model
from easyedit_detox.toy import sample_path

TEMPLATES = {"llama": ("model.layers.{}", "model.layers.{}.mlp.down_proj"),
             "gpt2": ("transformer.h.{}", "transformer.h.{}.mlp.c_proj")}


def profs_yaml(tmp_path, kind, model_dir, **changes):
    layer_tmp, rewrite_tmp = TEMPLATES[kind]
    raw = dict(alg_name="ProFS", model_name=model_dir, device="cpu", layers=[1, 3], top_k_ranks=2, centering=True,
               max_length=24, batch_size=3, layer_module_tmp=layer_tmp, rewrite_module_tmp=rewrite_tmp)
    raw.update(changes)
    path = tmp_path / f"profs-{kind}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


# -- the contract, restated ------------------------------------------------------------------------
def restated_embedding(model, tok, text, layer_module, max_length):
    """Mean over the text's tokens (one text, no padding) of the decoder layer's output, in float64."""
    ids = tok(text, truncation=True, max_length=max_length, return_tensors="pt")["input_ids"]
    seen = {}
    module = dict(model.named_modules())[layer_module]
    def keep(mod, args, out):
        seen["h"] = out[0] if isinstance(out, tuple) else out  # returns None: the output stays as it is

    hook = module.register_forward_hook(keep)
    with torch.no_grad():
        model(input_ids=ids)
    hook.remove()
    return seen["h"][0].double().numpy().mean(axis=0)


def restated_weights(model, tok, requests, kind, layers, k, centering, max_length):
    """Each edited weight as the contract defines it: W <- (I - P) W (Linear) or W (I - P) (GPT-2's Conv1D)."""
    layer_tmp, rewrite_tmp = TEMPLATES[kind]
    out = {}
    for layer in layers:
        pos = np.stack([restated_embedding(model, tok, r["target_new"], layer_tmp.format(layer), max_length)
                        for r in requests])
        neg = np.stack([restated_embedding(model, tok, r["ground_truth"], layer_tmp.format(layer), max_length)
                        for r in requests])
        t = (pos - neg) / 2
        if centering:
            v1 = np.linalg.svd(pos)[2][0]
            t = t @ (np.eye(t.shape[1]) - np.outer(v1, v1))
        rank = np.linalg.matrix_rank(t)
        vt = np.linalg.svd(t)[2][:min(k, rank)]
        keep = np.eye(t.shape[1]) - vt.T @ vt
        w = dict(model.named_parameters())[rewrite_tmp.format(layer) + ".weight"].detach().double().numpy()
        out[rewrite_tmp.format(layer) + ".weight"] = keep @ w if kind == "llama" else w @ keep
    return out


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("centering,k,n", [(True, 2, 5), (False, 3, 5), (True, 10, 4)])
def test_profs_follows_the_contract(kind, centering, k, n, request, safeedit_records, tmp_path):
    model, tok = request.getfixturevalue(f"tiny_{kind}")
    h = ProFSHyperParams.from_hparams(profs_yaml(tmp_path, kind, "unused", top_k_ranks=k, centering=centering))
    requests = [make_request(r) for r in safeedit_records[:n]]
    expected = restated_weights(model, tok, requests, kind, h.layers, k, centering, h.max_length)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    edited, originals = apply_profs_to_model(model, tok, requests, h, return_orig_weights=True,
                                             keep_original_weight=True)
    assert edited is model and set(originals) == set(expected)
    for name, p in model.named_parameters():
        if name in expected:
            assert np.abs(p.detach().double().numpy() - expected[name]).max() < 1e-5, name
            assert torch.equal(originals[name], before[name])
            assert not torch.equal(p, before[name])
        else:  # biases, every other layer, the embeddings: untouched
            assert torch.equal(p, before[name]), name


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_one_request_is_a_rank_one_edit(kind, request, safeedit_records, tmp_path):
    model, tok = request.getfixturevalue(f"tiny_{kind}")
    h = ProFSHyperParams.from_hparams(profs_yaml(tmp_path, kind, "unused", top_k_ranks=10))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    _, originals = apply_profs_to_model(model, tok, [make_request(safeedit_records[2])], h,
                                        return_orig_weights=True, keep_original_weight=True)
    params = dict(model.named_parameters())
    for name in originals:
        delta = (params[name].detach() - before[name]).double()
        assert torch.linalg.matrix_rank(delta, atol=1e-6).item() == 1, name


def test_profs_hparams_are_checked(tmp_path):
    with pytest.raises(HyperParamsError, match="top_k_ranks"):
        ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "llama", "m", top_k_ranks=0))
    with pytest.raises(HyperParamsError, match=r"unknown key\(s\) \['top_k'\]"):
        ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "llama", "m", top_k=2))
    with pytest.raises(HyperParamsError, match="alg_name is 'DINM'"):
        ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "llama", "m", alg_name="DINM"))


def test_profs_refuses_a_request_without_its_pair_and_a_wrong_template(tiny_llama, safeedit_records, tmp_path):
    model, tok = tiny_llama
    h = ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "llama", "m"))
    req = make_request(safeedit_records[0])
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    with pytest.raises(RequestError, match="'ground_truth'"):
        apply_profs_to_model(model, tok, [dict(req, ground_truth="")], h)
    bad = ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "llama", "m", layer_module_tmp="model.layer.{}"))
    with pytest.raises(HyperParamsError, match="model.layer.1"):
        apply_profs_to_model(model, tok, [req], bad)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_shipped_profs_yamls_load_with_the_papers_settings():
    mistral = ProFSHyperParams.from_hparams("hparams/ProFS/mistral-7b.yaml")
    gpt2 = ProFSHyperParams.from_hparams("hparams/ProFS/gpt2-medium.yaml")
    assert (mistral.top_k_ranks, mistral.layers, mistral.centering) == (10, list(range(15, 32)), True)
    assert (gpt2.top_k_ranks, gpt2.layers, gpt2.centering) == (2, list(range(10, 24)), True)
    ProFSHyperParams.from_hparams("hparams/ProFS/smollm2-135m-instruct.yaml")


def test_baseeditor_batch_edits_with_profs_from_alg_dict(tiny_gpt2_dir, safeedit_records, cuda_to_cpu, tmp_path):  # noqa: F811
    import easyedit_detox  # noqa: F401  (registers)
    from easyeditor import BaseEditor
    from easyeditor.util.alg_dict import ALG_DICT
    import easyeditor

    assert ALG_DICT["ProFS"] is apply_profs_to_model and easyeditor.ProFSHyperParams is ProFSHyperParams
    h = ProFSHyperParams.from_hparams(profs_yaml(tmp_path, "gpt2", tiny_gpt2_dir, device=0, batch_size=4,
                                                    max_length=1024))  # EasyEdit's metrics read it too
    from easyeditor.util.hparams import HyperParams

    assert isinstance(h, HyperParams)
    editor = BaseEditor.from_hparams(h)
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    reqs = [make_request(r) for r in safeedit_records[:4]]
    expected = restated_weights(editor.model, editor.tok, reqs, "gpt2", h.layers, 2, True, h.max_length)
    editor.batch_edit(prompts=[r["prompt"] for r in reqs], target_new=[r["target_new"] for r in reqs],
                      ground_truth=[r["ground_truth"] for r in reqs], keep_original_weight=False,
                      sequential_edit=True, verbose=False)
    params = dict(editor.model.named_parameters())
    changed = {n for n, p in params.items() if not torch.equal(p, before[n])}
    assert changed == set(expected)
    for name in expected:
        assert np.abs(params[name].detach().double().numpy() - expected[name]).max() < 1e-5


def test_profs_runs_through_the_cli(tiny_llama_dir, tmp_path):
    path = profs_yaml(tmp_path, "llama", tiny_llama_dir)
    out = tmp_path / "out"
    args = ["evaluate", "--hparams", path, "--data", sample_path(), "--out", str(out), "--limit", "3", "--no-progress",
            "--cache", str(tmp_path / "c"), "--general-cases", "0", "--max-length", "256", "--max-output-length", "8"]
    assert main(args) == 0
    rows = [json.loads(line) for line in (out / "cases.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(r["edit"]["layers"] == [1, 3] and r["edit"]["pairs"] == 1 for r in rows)
    # No suffix: ProFS sees the plain inputs.
    assert all(r["post"]["DS"]["input"] == r["pre"]["DS"]["input"] for r in rows)
    assert json.loads((out / "summary.json").read_text())["method"] == "ProFS"


def test_profs_answers_alike_row_wise_batched_and_one_case_at_a_time_and_runs_sequentially(tiny_llama_dir, tmp_path):
    path = profs_yaml(tmp_path, "llama", tiny_llama_dir)
    common = ["--hparams", path, "--data", sample_path(), "--cases", "3,5,8", "--no-progress", "--no-cache",
              "--general-cases", "0", "--max-length", "256", "--max-output-length", "8"]
    for name, per_batch in (("rowwise", "3"), ("single", "1")):
        assert main(["evaluate", *common, "--out", str(tmp_path / name), "--cases-per-batch", per_batch]) == 0
    rows = {name: [json.loads(line) for line in (tmp_path / name / "cases.jsonl").read_text().splitlines()]
            for name in ("rowwise", "single")}
    assert [r["post"] for r in rows["rowwise"]] == [r["post"] for r in rows["single"]]
    assert main(["evaluate", *common, "--out", str(tmp_path / "seq"), "--sequential", "--checkpoint-every", "2"]) == 0
    curve = json.loads((tmp_path / "seq" / "summary.json").read_text())["sequential"]
    assert [p["after_edits"] for p in curve] == [0, 2, 3]
