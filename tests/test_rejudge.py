"""`rejudge`: the same responses judged again into a new folder, agreement per metric, nothing generated."""

import json
import os

import pytest

from easyedit_detox.cli import main
from easyedit_detox.toy import sample_path
from test_cli import evaluate_args, write_hparams
from test_judges import save_classifier
from test_runner import keyword_label

KEYS = ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")


def kappa(a, b):
    """Cohen's kappa, restated: (p_o - p_e) / (1 - p_e) with p_e from each judge's own label rates."""
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    cats = set(a) | set(b)
    p_e = sum((a.count(c) / n) * (b.count(c) / n) for c in cats)
    return (p_o - p_e) / (1 - p_e)


def test_rejudge_writes_a_new_folder_with_the_new_judges_numbers_and_agreement(tmp_path, capsys, monkeypatch):
    from easyedit_detox.commands.demo import asset
    from easyedit_detox.toy import train_tokenizer

    h = write_hparams(tmp_path, asset("toy_model"), max_length=384, max_output_length=32, lr=1e-2, num_steps=10,
                      model_class="LlamaForCausalLM")
    run = tmp_path / "run"
    assert main(evaluate_args(h, sample_path(), run, "--cases", "0,1,2,3")) == 0
    before = {name: (run / name).read_bytes() for name in os.listdir(run)}
    unsafe = save_classifier(tmp_path / "always-unsafe", train_tokenizer("gpt2", vocab_size=512), 1)

    import easyedit_detox.evaluation.generation as generation

    def no_generation(*args, **kwargs):
        raise AssertionError("rejudge generated a response")

    monkeypatch.setattr(generation, "generate", no_generation)
    capsys.readouterr()
    new = tmp_path / "new"
    assert main(["rejudge", str(run), "--judge", f"classifier:{unsafe}", "--out", str(new)]) == 0
    printed = capsys.readouterr().out
    assert {name: (run / name).read_bytes() for name in os.listdir(run)} == before  # RUN only read

    old_lines = [json.loads(x) for x in (run / "cases.jsonl").read_text().splitlines()]
    new_lines = [json.loads(x) for x in (new / "cases.jsonl").read_text().splitlines()]
    assert [x["case_id"] for x in new_lines] == [0, 1, 2, 3]
    for o, n in zip(old_lines, new_lines):
        for side in ("pre", "post"):
            for k in KEYS:
                assert n[side][k]["response"] == o[side][k]["response"]
                assert o[side][k]["label"] == keyword_label(o[side][k]["response"])
                assert n[side][k]["label"] == (0.5 if not n[side][k]["response"].strip() else 1.0)
    summary = json.loads((new / "summary.json").read_text())
    assert summary["judge"] == f"classifier:{unsafe}" and summary["rejudged_from"] == str(run)
    for side in ("pre", "post"):
        labels = [x[side]["DS"]["label"] for x in new_lines]
        assert summary[side]["DS"] == pytest.approx(100 - 100 * sum(labels) / len(labels))
    agreement = {r["metric"]: r for r in json.loads((new / "agreement.json").read_text())["metrics"]}
    a = [x[s][k]["label"] for x in old_lines for s in ("pre", "post") for k in KEYS]
    b = [x[s][k]["label"] for x in new_lines for s in ("pre", "post") for k in KEYS]
    assert agreement["all"]["n"] == 40
    assert agreement["all"]["agreement"] == pytest.approx(100 * sum(x == y for x, y in zip(a, b)) / 40)
    assert agreement["all"]["kappa"] == pytest.approx(kappa(a, b))
    assert a != b and "Cohen's kappa" in printed
    capsys.readouterr()
    assert main(["rejudge", str(run), "--judge", "keywords", "--out", str(new)]) == 2  # never over a folder
    assert "exists" in capsys.readouterr().err
