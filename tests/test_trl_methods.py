"""SFT and DPO through TRL: the same weights as TRL's own trainer set up by hand in the test, registered with
easyeditor and run by its BaseEditor, undone exactly, and evaluated under the global protocol through the CLI."""

import json
import random

import numpy as np
import pytest
import torch
import yaml

from dinm_reference import make_request
from test_baseeditor import cuda_to_cpu  # noqa: F401  (a fixture)
from easyedit_detox.cli import main
from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.methods.dpo import DPOHyperParams, apply_dpo_to_model
from easyedit_detox.methods.sft import SFTHyperParams, apply_sft_to_model
from easyedit_detox.toy import sample_path

trl = pytest.importorskip("trl")


def training_yaml(tmp_path, alg, model_dir, **changes):
    raw = dict(alg_name=alg, model_name=model_dir, device="cpu", num_steps=3, batch_size=2, lr=1e-3, max_length=512)
    raw.update(changes)
    path = tmp_path / f"{alg}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def by_hand(trainer_cls, config_cls, model, tok, rows, tmp_path, **extra):
    """TRL's trainer as its documentation sets it up, with the settings of training_yaml spelled out."""
    import datasets

    args = config_cls(output_dir=str(tmp_path / "by-hand"), max_steps=3, per_device_train_batch_size=2,
                      learning_rate=1e-3, max_length=512, seed=0, data_seed=0, report_to=[], save_strategy="no",
                      gradient_checkpointing=False, use_cpu=True, disable_tqdm=True, **extra)
    trainer = trainer_cls(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows), processing_class=tok)
    trainer.train()
    return dict(model.named_parameters())


@pytest.mark.parametrize("alg", ["SFT", "DPO"])
def test_the_edit_is_trls_own_training(alg, tiny_llama_dir, load_tiny, safeedit_records, tmp_path):
    requests = [make_request(r) for r in safeedit_records[:4]]
    ours, tok = load_tiny(tiny_llama_dir)
    before = {n: p.detach().clone() for n, p in ours.named_parameters()}
    if alg == "SFT":
        h = SFTHyperParams.from_hparams(training_yaml(tmp_path, alg, "m"))
        _, originals = apply_sft_to_model(ours, tok, requests, h, return_orig_weights=True, keep_original_weight=True)
        rows = [{"prompt": r["prompt"], "completion": " " + r["target_new"].strip()} for r in requests]
        expected = by_hand(trl.SFTTrainer, trl.SFTConfig, *load_tiny(tiny_llama_dir), rows, tmp_path,
                           completion_only_loss=True)
    else:
        h = DPOHyperParams.from_hparams(training_yaml(tmp_path, alg, "m"))
        _, originals = apply_dpo_to_model(ours, tok, requests, h, return_orig_weights=True, keep_original_weight=True)
        rows = [{"prompt": r["prompt"], "chosen": " " + r["target_new"].strip(),
                 "rejected": " " + r["ground_truth"].strip()}
                for r in requests]
        expected = by_hand(trl.DPOTrainer, trl.DPOConfig, *load_tiny(tiny_llama_dir), rows, tmp_path,
                           beta=0.1, precompute_ref_log_probs=True)
    params = dict(ours.named_parameters())
    assert set(originals) == set(params)  # full fine-tuning: every tensor trained, every original handed back
    assert all(torch.equal(originals[n], before[n]) for n in params)
    assert any(not torch.equal(params[n], before[n]) for n in params)
    for name, p in params.items():
        assert torch.allclose(p, expected[name], atol=1e-6, rtol=0), name


def test_lora_trains_adapters_and_merges_them_into_the_targets(tiny_llama_dir, load_tiny, safeedit_records, tmp_path):
    model, tok = load_tiny(tiny_llama_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    h = SFTHyperParams.from_hparams(training_yaml(tmp_path, "SFT", "m", lora=True, target_modules=["q_proj"],
                                                  lr=1e-2))
    edited, originals = apply_sft_to_model(model, tok, [make_request(r) for r in safeedit_records[:2]], h,
                                           return_orig_weights=True, keep_original_weight=True)
    assert edited is model and type(model).__name__ == "LlamaForCausalLM"
    assert sorted(originals) == [f"model.layers.{i}.self_attn.q_proj.weight" for i in range(4)]
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(originals)
    assert not any("lora" in n for n, _ in model.named_parameters())


def test_training_leaves_the_callers_random_states_and_model_as_they_were(tiny_llama_dir, tiny_llama, tmp_path,
                                                                         safeedit_records):
    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.methods.session import UndoSession

    model, tok = tiny_llama
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    session = UndoSession(model, tok, load_hparams(training_yaml(tmp_path, "DPO", tiny_llama_dir)))
    with session.edited(make_request(safeedit_records[0])) as edit:
        assert len(edit.written) == len(before) and edit.info["steps"] == 3
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert random.getstate() == states[0] and (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])


def test_training_hparams_are_checked(tmp_path):
    with pytest.raises(HyperParamsError, match="num_steps"):
        SFTHyperParams.from_hparams(training_yaml(tmp_path, "SFT", "m", num_steps=0))
    with pytest.raises(HyperParamsError, match="beta"):
        DPOHyperParams.from_hparams(training_yaml(tmp_path, "DPO", "m", beta=-1))
    with pytest.raises(HyperParamsError, match=r"unknown key\(s\) \['steps'\]"):
        SFTHyperParams.from_hparams(training_yaml(tmp_path, "SFT", "m", steps=3))


@pytest.mark.parametrize("alg", ["SFT", "DPO"])
def test_baseeditor_runs_them_from_alg_dict(alg, tiny_gpt2_dir, safeedit_records, cuda_to_cpu, tmp_path):  # noqa: F811
    import easyedit_detox  # noqa: F401  (registers)
    import easyeditor
    from easyeditor import BaseEditor
    from easyeditor.util.alg_dict import ALG_DICT

    fn, cls = (apply_sft_to_model, SFTHyperParams) if alg == "SFT" else (apply_dpo_to_model, DPOHyperParams)
    assert ALG_DICT[alg] is fn and getattr(easyeditor, f"{alg}HyperParams") is cls
    h = cls.from_hparams(training_yaml(tmp_path, alg, tiny_gpt2_dir, device=0, max_length=1024, lr=1e-2))
    editor = BaseEditor.from_hparams(h)
    editor.tok.pad_token = editor.tok.eos_token  # GPT-2 has none; TRL's batches need one
    before = {n: p.detach().clone() for n, p in editor.model.named_parameters()}
    reqs = [make_request(r) for r in safeedit_records[:2]]
    editor.batch_edit(prompts=[r["prompt"] for r in reqs], target_new=[r["target_new"] for r in reqs],
                      ground_truth=[r["ground_truth"] for r in reqs], keep_original_weight=False,
                      sequential_edit=True, verbose=False)
    assert any(not torch.equal(p, before[n]) for n, p in editor.model.named_parameters())


def test_sft_runs_the_global_protocol_through_the_cli(tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    args = ["evaluate", "--hparams", training_yaml(tmp_path, "SFT", tiny_llama_dir), "--data", sample_path(),
            "--out", str(out), "--cases", "20,21", "--train", sample_path(), "--train-limit", "4", "--no-progress",
            "--no-cache", "--general-cases", "0", "--max-length", "1024", "--max-output-length", "6"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["method"] == "SFT" and summary["protocol"] == "global"
    assert summary["train"]["edit"]["steps"] == 3 and summary["train"]["records"] == 4


@pytest.mark.parametrize("alg", ["SFT", "DPO"])
def test_an_interrupted_training_resumes_from_its_checkpoint_to_the_same_weights(alg, tiny_llama_dir, load_tiny,
                                                                                 safeedit_records, tmp_path):
    import os

    cls, apply = (SFTHyperParams, apply_sft_to_model) if alg == "SFT" else (DPOHyperParams, apply_dpo_to_model)
    requests = [make_request(r) for r in safeedit_records[:4]]
    whole, tok = load_tiny(tiny_llama_dir)
    apply(whole, tok, requests, cls.from_hparams(training_yaml(tmp_path, alg, "m", num_steps=4)))

    h = cls.from_hparams(training_yaml(tmp_path, alg, "m", num_steps=4, checkpoint_dir=str(tmp_path / "ckpt"),
                                       checkpoint_every=2))
    model, tok = load_tiny(tiny_llama_dir)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def stop_after_step_three(step, loss):  # a point of progress: one step past the checkpoint of step 2
        if step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        apply(model, tok, requests, h, on_step=stop_after_step_three)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # given back as it was
    (run_folder,) = os.listdir(tmp_path / "ckpt")
    assert [f for f in os.listdir(tmp_path / "ckpt" / run_folder) if f.startswith("checkpoint")] == ["checkpoint-2"]
    seen = []
    apply(model, tok, requests, h, on_step=lambda step, loss: seen.append(step))
    assert seen == [3, 4]  # resumed after step 2
    assert os.listdir(tmp_path / "ckpt") == []  # the finished run's checkpoints are removed
    # transformers' resume restores the optimizer, scheduler and RNG, but is not bit-exact in every TRL version
    # (measured: SFT exact on trl 0.22.2, DPO exact on 1.14.2, the other two within half the training's change).
    expected = dict(whole.named_parameters())
    gap = max((p - expected[n]).abs().max().item() for n, p in model.named_parameters())
    moved = max((expected[n] - before[n]).abs().max().item() for n in before)
    assert moved > 0 and gap <= 0.5 * moved
