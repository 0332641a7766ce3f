"""The global protocol (`evaluate --train`): detoxify once from training records, answer every case with that model.

Expected responses come from an argmax loop written here on a model the method was applied to by hand
(its apply function, the same training requests), not from the package's generation code.
"""

import json

import pytest
import torch
import yaml

from dinm_reference import make_request
from test_generation import manual_greedy
from test_methods import method_yaml
from easyedit_detox.cli import main
from easyedit_detox.evaluation.results import ResultsFolder
from easyedit_detox.methods.profs import ProFSHyperParams, apply_profs_to_model
from easyedit_detox.methods.registry import adapter_for
from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.toy import sample_path

NEW = 8  # new tokens per response


def profs_yaml(tmp_path, model_dir):
    raw = dict(alg_name="ProFS", model_name=model_dir, device="cpu", layers=[1, 3], top_k_ranks=2, centering=True,
               max_length=64, batch_size=4, layer_module_tmp="model.layers.{}",
               rewrite_module_tmp="model.layers.{}.mlp.down_proj")
    path = tmp_path / "profs.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def evaluate_args(hparams, out, cases="15,16,17", train_limit="6", *extra):
    return ["evaluate", "--hparams", hparams, "--data", sample_path(), "--out", str(out), "--cases", cases,
            "--train", sample_path(), "--train-limit", train_limit, "--no-progress", "--no-cache",
            "--general-cases", "0", "--max-length", "1024", "--max-output-length", str(NEW),
            "--cases-per-batch", "2", *extra]


def rows(folder):
    return [json.loads(line) for line in (folder / "cases.jsonl").read_text().splitlines()]


def expected_text(model, tok, text):
    ids = manual_greedy(model, tok, text, NEW)
    return tok.decode([t for t in ids if t != tok.eos_token_id], skip_special_tokens=True).strip()


def test_global_post_responses_are_those_of_the_detoxified_model(tiny_llama_dir, load_tiny, safeedit_records,
                                                                 tmp_path, capsys):
    path = profs_yaml(tmp_path, tiny_llama_dir)
    out = tmp_path / "out"
    assert main(evaluate_args(path, out)) == 0
    found = {r["case_id"]: r for r in rows(out)}
    assert sorted(found) == [15, 16, 17] and all(r["edit"]["global"] for r in found.values())

    vanilla, tok = load_tiny(tiny_llama_dir)
    detoxified, _ = load_tiny(tiny_llama_dir)
    train = [make_request(r) for r in safeedit_records[:6]]
    apply_profs_to_model(detoxified, tok, train, ProFSHyperParams.from_hparams(path))
    by_id = {r["id"]: r for r in safeedit_records}
    for case_id, row in found.items():
        prompt = by_id[case_id]["adversarial prompt"]
        assert row["pre"]["DS"]["input"] == row["post"]["DS"]["input"] == prompt  # ProFS: no suffix
        assert not row["pre"]["DS"]["truncated"]
        assert row["pre"]["DS"]["response"] == expected_text(vanilla, tok, prompt)
        assert row["post"]["DS"]["response"] == expected_text(detoxified, tok, prompt)
    assert any(r["pre"]["DS"]["response"] != r["post"]["DS"]["response"] for r in found.values())

    summary = json.loads((out / "summary.json").read_text())
    run = json.loads((out / "run.json").read_text())
    assert summary["protocol"] == run["mode"] == "global"
    assert summary["train"]["records"] == run["train"]["records"] == 6
    assert summary["train"]["case_ids"] == [0, 1, 2, 3, 4, 5] and len(summary["train"]["data_sha256"]) == 16
    assert summary["train"]["edit"]["pairs"] == 6
    assert "global protocol: trained on 6 records" in capsys.readouterr().out


def test_the_callers_model_is_restored_and_dinm_trains_with_the_suffix(tiny_llama, tiny_llama_dir, tmp_path):
    from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate
    from easyedit_detox.evaluation.training import TrainingSet
    from easyedit_detox.methods.hparams import load_hparams
    from test_cli import write_hparams

    model, tok = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    h = load_hparams(write_hparams(tmp_path, tiny_llama_dir))
    seen = []
    apply_fn = adapter_for("DINM").apply_fn()

    def recording(model_, tok_, requests, hparams, **kwargs):
        seen.append([r["prompt"] for r in requests])
        return apply_fn(model_, tok_, requests, hparams, **kwargs)

    settings = EvaluationSettings(progress=False, use_cache=False, general_cases=0,
                                  train=TrainingSet(sample_path(), limit=3))
    summary = evaluate(model, tok, h, sample_path(), str(tmp_path / "o"), case_ids=[20, 21], apply_fn=recording,
                       settings=settings)
    assert len(seen) == 1 and len(seen[0]) == 3  # one call with every training record (DINM takes them together)
    assert all(p.endswith(h.suffix_system_prompt) for p in seen[0])
    assert summary["protocol"] == "global" and summary["n_cases"] == 2
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_a_training_record_sharing_a_question_with_an_evaluated_case_is_refused(tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "out"
    # Records 12 and 25 of the sample put one question under two jailbreak templates.
    assert main(evaluate_args(profs_yaml(tmp_path, tiny_llama_dir), out, "20,25", "15")) == 2
    err = capsys.readouterr().err
    assert "training record 12 / evaluated record 25" in err and "'question'" in err and "--train-cases" in err
    assert not out.exists()  # refused before anything was loaded or written


def test_train_options_need_train_and_exclude_sequential(tiny_llama_dir, tmp_path, capsys):
    path = profs_yaml(tmp_path, tiny_llama_dir)
    args = ["evaluate", "--hparams", path, "--data", sample_path(), "--out", str(tmp_path / "o"), "--limit", "2"]
    assert main(args + ["--train-limit", "3"]) == 2
    assert "--train-limit selects records of the --train file" in capsys.readouterr().err
    assert main(args + ["--train", sample_path(), "--sequential"]) == 2
    assert "drop one of the two" in capsys.readouterr().err


def test_methods_whose_edits_are_not_weights_are_refused_in_the_global_protocol():
    for name in ("GRACE", "WISE"):
        with pytest.raises(HyperParamsError, match="cannot run the global protocol"):
            adapter_for(name).refuse_global()
    for name in ("DINM", "ProFS", "FT", "LoRA", "MEND"):
        adapter_for(name).refuse_global()


def test_an_interrupted_global_run_resumes_to_the_same_results(tiny_llama_dir, tmp_path, monkeypatch):
    path = profs_yaml(tmp_path, tiny_llama_dir)
    whole = tmp_path / "whole"
    assert main(evaluate_args(path, whole, "15,16,17,18")) == 0
    # Stop after the first chunk of two cases is on disk (a point of progress, not a time).
    original = ResultsFolder.append
    calls = {"cases": 0}

    def stopping(self, name, lines):
        original(self, name, lines)
        if name == "cases.jsonl" and lines:
            calls["cases"] += 1
            raise KeyboardInterrupt

    part = tmp_path / "part"
    monkeypatch.setattr(ResultsFolder, "append", stopping)
    assert main(evaluate_args(path, part, "15,16,17,18")) == 130  # as after Ctrl-C
    monkeypatch.setattr(ResultsFolder, "append", original)
    assert len(rows(part)) == 2 and (part / "detoxified.json").exists()
    assert main(evaluate_args(path, part, "15,16,17,18")) == 0
    strip = lambda r: {k: v for k, v in r.items() if k != "edit"}  # noqa: E731  (edit seconds differ)
    assert [strip(r) for r in rows(part)] == [strip(r) for r in rows(whole)]
    assert json.loads((part / "detoxified.json").read_text())["weights"] == \
        json.loads((whole / "detoxified.json").read_text())["weights"]


def test_compare_refuses_to_mix_the_global_and_per_case_protocols(tiny_llama_dir, tmp_path, capsys):
    path = profs_yaml(tmp_path, tiny_llama_dir)
    assert main(evaluate_args(path, tmp_path / "global")) == 0
    per_case = ["evaluate", "--hparams", path, "--data", sample_path(), "--out", str(tmp_path / "per"),
                "--cases", "15,16,17", "--no-progress", "--no-cache", "--general-cases", "0", "--max-length", "256",
                "--max-output-length", str(NEW)]
    assert main(per_case) == 0
    capsys.readouterr()
    runs = [str(tmp_path / "global"), str(tmp_path / "per")]
    assert main(["compare", *runs]) == 2
    err = capsys.readouterr().err
    assert "protocol" in err and "global (--train)" in err and "--force" in err
    assert main(["compare", *runs, "--force"]) == 0
    assert "ProFS (global)" in capsys.readouterr().out


def test_ft_detoxifies_in_one_batched_call(tiny_llama, tiny_llama_dir, tmp_path):
    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.methods.session import UndoSession

    model, tok = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    session = UndoSession(model, tok, load_hparams(method_yaml(tmp_path, "FT", "llama", tiny_llama_dir)))
    requests = [make_request(r) for r in json.load(open(sample_path(), encoding="utf-8"))[:3]]
    edit = session.detoxify(requests)
    assert edit.written == ["model.layers.2.mlp.down_proj.weight"]
    assert not torch.equal(dict(model.named_parameters())[edit.written[0]], before[edit.written[0]])
    session.restore_all()
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


def test_apply_train_ships_the_detoxified_model_as_a_patch(tiny_llama_dir, load_tiny, safeedit_records, tmp_path):
    from safetensors.torch import load_file

    path = profs_yaml(tmp_path, tiny_llama_dir)
    patch = tmp_path / "detox.safetensors"
    assert main(["apply", "--hparams", path, "--train", sample_path(), "--train-cases", "0,2,5", "--patch",
                 str(patch), "--no-progress"]) == 0
    model, tok = load_tiny(tiny_llama_dir)
    apply_profs_to_model(model, tok, [make_request(safeedit_records[i]) for i in (0, 2, 5)],
                         ProFSHyperParams.from_hparams(path))
    params = dict(model.named_parameters())
    tensors = load_file(str(patch))
    edited = {k[len("edited."):]: v for k, v in tensors.items() if k.startswith("edited.")}
    assert sorted(edited) == ["model.layers.1.mlp.down_proj.weight", "model.layers.3.mlp.down_proj.weight"]
    assert all(torch.equal(v, params[k]) for k, v in edited.items())
    assert main(["apply", "--hparams", path, "--train", sample_path(), "--limit", "3", "--patch",
                 str(tmp_path / "p2.safetensors")]) == 2
