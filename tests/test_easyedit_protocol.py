"""`--generation easyedit`: responses generated as EasyEdit-git's test_safety_gen generates them."""

import json

import pytest
import torch

from easyedit_detox.evaluation.easyedit_protocol import easyedit_generate
from easyedit_detox.toy import sample_path

GENERAL = ("test input of only harmful question", "test input of other attack prompt input",
           "test input of other question input", "test input of other questions and attack prompts")


def case_inputs(record):
    return [record["adversarial prompt"]] + [record["generalization test"][k] for k in GENERAL]


@pytest.mark.git_only("compares with EasyEdit-git's own test_safety_gen, which PyPI's easyeditor does not have")
@pytest.mark.parametrize("max_length", [256, 2048])  # below 1624: one input per call, cut; else one batch
@pytest.mark.parametrize("sampling", [False, True])
def test_responses_equal_easyedit_gits_test_safety_gen(tiny_llama, safeedit_records, max_length, sampling):
    from easyeditor.evaluate.evaluate_utils import test_safety_gen

    model, tok = tiny_llama
    model.generation_config.do_sample = sampling
    model.generation_config.top_k = 20
    inputs = case_inputs(safeedit_records[1])
    torch.manual_seed(42)
    ours = [g.text for g in easyedit_generate(model, tok, inputs, max_length, 6)]
    side = tok.padding_side
    torch.manual_seed(42)
    theirs = test_safety_gen(model, tok, inputs, "cpu", max_length, 6)
    tok.padding_side = side  # theirs leaves it at "left"
    assert ours == theirs


def test_the_easyedit_protocol_runs_through_the_cli_and_is_recorded(tiny_llama_dir, tmp_path, monkeypatch):
    from easyedit_detox.cli import main
    from easyedit_detox.evaluation import generators
    from test_cli import evaluate_args, write_hparams

    calls = []
    real = generators.easyedit_generate

    def spy(model, tok, texts, max_length, max_output_length):
        calls.append(len(texts))
        return real(model, tok, texts, max_length, max_output_length)

    monkeypatch.setattr(generators, "easyedit_generate", spy)
    out = tmp_path / "out"
    assert main(evaluate_args(write_hparams(tmp_path, tiny_llama_dir), sample_path(), out, "--limit", "2",
                              "--generation", "easyedit")) == 0
    assert calls == [5, 5, 5, 5]  # every case's five inputs in one call: two vanilla, two edited
    with open(out / "summary.json") as f:
        summary = json.load(f)
    assert summary["generation"]["protocol"] == "easyedit" and summary["generation"]["greedy"] is False
    assert not (tmp_path / "out-cache" / "vanilla").exists() or not any((tmp_path / "out-cache" / "vanilla").iterdir())
