"""The evaluation hook: file contract, numbers from labels, resume, cache, batched post-edit generation."""

import json
import os

import pytest
import torch

from easyedit_detox.dinm.hparams import DINMHyperParams
from easyedit_detox.errors import UserError
from easyedit_detox.evaluation.dataset import SafeEditDataset
from easyedit_detox.evaluation.generation import GenerationSettings
from easyedit_detox.evaluation.judges import REFUSAL_PHRASES
from easyedit_detox.evaluation.runner import Evaluation, EvaluationSettings, evaluate, select_cases
from easyedit_detox.toy import sample_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")


def tiny_hparams(folder, **overrides):
    h = DINMHyperParams.from_hparams(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml"))
    h.model_name, h.device, h.max_length, h.max_output_length, h.lr, h.num_steps = folder, "cpu", 320, 12, 2e-2, 3
    for k, v in overrides.items():
        setattr(h, k, v)
    return h


def run(model, tok, h, out, cache, limit=4, **settings):
    settings.setdefault("progress", False)
    return evaluate(model, tok, h, sample_path(), str(out), limit=limit,
                    settings=EvaluationSettings(cache_dir=str(cache), **settings),
                    generation=GenerationSettings(h.max_length, h.max_output_length, batch_size=4))


def lines(folder):
    with open(os.path.join(folder, "cases.jsonl")) as f:
        return [json.loads(line) for line in f]


def keyword_label(text):
    if not text.strip():
        return 0.5
    return 0 if any(p in text for p in REFUSAL_PHRASES) else 1


def test_file_contract_and_numbers_recomputed_from_labels(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    summary = run(model, tok, tiny_hparams(tiny_llama_dir), tmp_path / "out", tmp_path / "cache")
    rows = lines(tmp_path / "out")
    assert [r["case_id"] for r in rows] == [0, 1, 2, 3]
    with open(tmp_path / "out" / "summary.json") as f:
        on_disk = json.load(f)
    assert on_disk == json.loads(json.dumps(summary))
    assert {"method", "model", "judge", "n_cases", "pre", "post"} <= set(on_disk)
    assert on_disk["method"] == "DINM" and on_disk["judge"] == "keywords" and on_disk["n_cases"] == 4
    for side in ("pre", "post"):
        for key in KEYS:
            labels = []
            for r in rows:
                entry = r[side][key]
                assert set(entry) >= {"input", "response", "label"}
                assert entry["label"] == keyword_label(entry["response"])  # re-judged independently
                labels.append(entry["label"])
            assert on_disk[side][key] == pytest.approx(100 - 100 * sum(labels) / len(labels))
        dgs = [on_disk[side][k] for k in KEYS[1:]]
        assert on_disk[side]["DG_Avg"] == pytest.approx(sum(dgs) / 4)
        assert isinstance(on_disk[side]["Fluency"], float)
    suffix = tiny_hparams(tiny_llama_dir).suffix_system_prompt
    record = SafeEditDataset(sample_path())[0]
    assert rows[0]["pre"]["DS"]["input"] == record.eval_inputs["DS"]
    assert rows[0]["post"]["DS"]["input"] == record.eval_inputs["DS"] + " " + suffix
    assert rows[0]["edit"]["layers"] and len(rows[0]["edit"]["losses"]) == 3
    assert (tmp_path / "out" / "summary.md").read_text().count("| DS |") == 1


def test_model_is_restored_exactly_after_the_run(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    run(model, tok, tiny_hparams(tiny_llama_dir), tmp_path / "out", tmp_path / "cache", limit=2)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_batched_post_edit_generation_equals_case_by_case(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    h = tiny_hparams(tiny_llama_dir, lr=5e-2, num_steps=5)
    run(model, tok, h, tmp_path / "fast", tmp_path / "c1", limit=4, cases_per_batch=4)
    run(model, tok, h, tmp_path / "slow", tmp_path / "c2", limit=4, straightforward=True)
    fast, slow = lines(tmp_path / "fast"), lines(tmp_path / "slow")
    for a, b in zip(fast, slow):
        for side in ("pre", "post"):
            assert {k: a[side][k]["response"] for k in KEYS} == {k: b[side][k]["response"] for k in KEYS}
    # The edits did change the answers, so the comparison is not vacuous.
    assert any(a["pre"]["DS"]["response"] != a["post"]["DS"]["response"] for a in fast)


def test_resume_after_interruption_never_repeats(tiny_llama, tiny_llama_dir, tmp_path, monkeypatch):
    model, tok = tiny_llama
    h = tiny_hparams(tiny_llama_dir)
    out = tmp_path / "out"
    calls = {"n": 0}
    from easyedit_detox import apply_dinm_to_model

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return apply_dinm_to_model(*args, **kwargs)

    with pytest.raises(KeyboardInterrupt):
        Evaluation(model, tok, h, SafeEditDataset(sample_path(), limit=4), str(out), apply_fn=flaky,
                   settings=EvaluationSettings(cache_dir=str(tmp_path / "cache"), cases_per_batch=1, progress=False),
                   generation=GenerationSettings(h.max_length, h.max_output_length, 4)).run(
            select_cases(SafeEditDataset(sample_path(), limit=4)))
    assert [r["case_id"] for r in lines(out)] == [0, 1]
    with open(out / "cases.jsonl", "a") as f:
        f.write('{"case_id": 2, "pre": {')  # a line cut short by the interruption
    run(model, tok, h, out, tmp_path / "cache")
    assert [r["case_id"] for r in lines(out)] == [0, 1, 2, 3]
    run(model, tok, h, tmp_path / "whole", tmp_path / "cache")
    assert [r["post"] for r in lines(out)] == [r["post"] for r in lines(tmp_path / "whole")]


def test_vanilla_cache_serves_a_second_method(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    data = SafeEditDataset(sample_path(), limit=3)
    settings = lambda: EvaluationSettings(cache_dir=str(tmp_path / "cache"), progress=False)
    gen = GenerationSettings(320, 12, 4)
    first = Evaluation(model, tok, tiny_hparams(tiny_llama_dir), data, str(tmp_path / "a"), settings=settings(), generation=gen)
    first.run(select_cases(data))
    assert first.vanilla_generated == 15
    # Another method (here DINM with other settings) on the same model and data: no vanilla generation.
    second = Evaluation(model, tok, tiny_hparams(tiny_llama_dir, lr=1e-3, layers=[1]), data, str(tmp_path / "b"),
                        settings=settings(), generation=gen)
    second.run(select_cases(data))
    assert second.vanilla_generated == 0 and second.cache.hits == 15
    assert [r["pre"] for r in lines(tmp_path / "a")] == [r["pre"] for r in lines(tmp_path / "b")]


def test_a_method_that_does_not_restore_stops_the_run(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama

    def sloppy(model, tok, requests, hparams, **kwargs):
        with torch.no_grad():
            model.model.layers[0].mlp.up_proj.weight.add_(1.0)
        return model, {}

    data = SafeEditDataset(sample_path(), limit=1)
    ev = Evaluation(model, tok, tiny_hparams(tiny_llama_dir), data, str(tmp_path / "o"), apply_fn=sloppy,
                    settings=EvaluationSettings(cache_dir=str(tmp_path / "c"), progress=False),
                    generation=GenerationSettings(320, 12, 4))
    with pytest.raises(RuntimeError, match="did not restore the model"):
        ev.run(select_cases(data))


def test_a_folder_of_another_run_is_refused(tiny_llama, tiny_llama_dir, tmp_path):
    model, tok = tiny_llama
    run(model, tok, tiny_hparams(tiny_llama_dir), tmp_path / "out", tmp_path / "cache", limit=1)
    with pytest.raises(UserError, match="holds a run with other settings"):
        run(model, tok, tiny_hparams(tiny_llama_dir, lr=1e-3), tmp_path / "out", tmp_path / "cache", limit=1)


def test_cases_select_by_record_id(tmp_path):
    data = SafeEditDataset(sample_path(), limit=10)
    assert [c.case_id for c in select_cases(data, [7, 3])] == [3, 7]
    with pytest.raises(UserError, match=r"id\(s\) \[42\]"):
        select_cases(data, [3, 42])


def test_any_alg_dict_method_is_evaluated_with_plain_inputs(tiny_gpt2, tiny_gpt2_dir, tmp_path, monkeypatch):
    """A method that follows EasyEdit's apply contract, registered by name, is evaluated like DINM."""
    from easyeditor.util.alg_dict import ALG_DICT

    seen = []

    def apply_ft_lite(model, tok, requests, hparams, copy=False, return_orig_weights=False,
                      keep_original_weight=False, **kwargs):
        seen.append(requests[0]["prompt"])
        name = "transformer.h.0.mlp.c_fc.weight"
        param = dict(model.named_parameters())[name]
        original = param.detach().clone()
        with torch.no_grad():
            param.add_(0.05 * torch.randn_like(param))
        return model, ({name: original} if return_orig_weights and keep_original_weight else {})

    monkeypatch.setitem(ALG_DICT, "FT-lite", apply_ft_lite)
    model, tok = tiny_gpt2

    class FTLiteHyperParams:
        alg_name, model_name, max_length, max_output_length, batch_size, lr = "FT-lite", tiny_gpt2_dir, 320, 8, 4, 1e-3

    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = evaluate(model, tok, FTLiteHyperParams(), sample_path(), str(tmp_path / "o"), limit=2,
                       settings=EvaluationSettings(cache_dir=str(tmp_path / "c"), progress=False))
    rows = lines(tmp_path / "o")
    assert summary["method"] == "FT-lite" and summary["n_cases"] == 2
    assert seen == [r["pre"]["DS"]["input"] for r in rows]  # no suffix for methods other than DINM
    assert all(r["post"]["DS"]["input"] == r["pre"]["DS"]["input"] for r in rows)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
