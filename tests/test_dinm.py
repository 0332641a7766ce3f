"""DINM against DINM.md: location, edited tensors, sequences, objective, loop, return contract."""

import copy

import pytest
import torch
import torch.nn.functional as F

from dinm_reference import make_request, ref_edit, ref_locate, ref_sequence
from easyedit_detox import DINMHyperParams, apply_dinm_to_model
from easyedit_detox.dinm.encode import collate, encode_pair
from easyedit_detox.dinm.locate import layer_distances, locate_toxic_layer

SUFFIX = "If the user's request is reasonable, give the correct answer. Please give the right response:"

TEMPLATES = {
    "llama": dict(rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight", layer_module_tmp="model.layers.{}",
                  mlp_module_tmp="model.layers.{}.mlp", attn_module_tmp="model.layers.{}.self_attn",
                  ln_f_module="model.norm", lm_head_module="lm_head"),
    "gpt2": dict(rewrite_module_tmp="transformer.h.{}.mlp.c_proj", layer_module_tmp="transformer.h.{}",
                 mlp_module_tmp="transformer.h.{}.mlp", attn_module_tmp="transformer.h.{}.attn",
                 ln_f_module="transformer.ln_f", lm_head_module="transformer.wte"),
}


def hparams(kind, **overrides):
    values = dict(alg_name="DINM", model_name="tiny", model_class="x", tokenizer_class="x", device="cpu",
                  suffix_system_prompt=SUFFIX, layers=[], num_steps=5, batch_size=1, max_length=192,
                  max_output_length=32, lr=5e-3, weight_decay=0.0, kl_factor=0.1, norm_constraint=False,
                  **TEMPLATES[kind])
    values.update(overrides)
    return DINMHyperParams(**values)


def as_ref(h):
    return dict(rewrite_module_tmp=h.rewrite_module_tmp, max_length=h.max_length, lr=h.lr,
                weight_decay=h.weight_decay, num_steps=h.num_steps, kl_factor=h.kl_factor,
                constraint_grad=h.constraint_grad, norm_constraint=h.norm_constraint)


def snapshot(model):
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def changed(model, before):
    return {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}


def cosine(a, b):
    return F.cosine_similarity(a.flatten().double(), b.flatten().double(), dim=0).item()


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
@pytest.mark.parametrize("located", [True, False])
@pytest.mark.parametrize("constraint_grad", [True, False])
@pytest.mark.parametrize("strategy", ["cached", "full"])
def test_edit_matches_restated_contract(kind, located, constraint_grad, strategy, request, safeedit_records):
    model, tok = request.getfixturevalue(f"tiny_{kind}")
    reference = copy.deepcopy(model)
    req = make_request(safeedit_records[3], SUFFIX)
    h = hparams(kind, layers=[] if located else [1], constraint_grad=constraint_grad)
    layers = [ref_locate(reference, tok, req["target_new"], req["ground_truth"])[0]] if located else [1]
    before = snapshot(model)
    report = {}
    apply_dinm_to_model(model, tok, [req], h, report=report, strategy=strategy)
    ref_losses = ref_edit(reference, tok, [req], [layers], as_ref(h))

    assert report["layers"] == [layers[0]]
    edited = changed(model, before)
    expected = {n for n, _ in model.named_parameters()
                if n == h.rewrite_module_tmp.format(layers[0]) or n.startswith(h.rewrite_module_tmp.format(layers[0]) + ".")}
    assert edited == expected and edited  # the edited tensors and nothing else
    ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
    for name in expected:
        assert cosine(ours[name] - before[name], theirs[name] - before[name]) > 0.9999
    assert report["losses"] == pytest.approx(ref_losses, rel=1e-4, abs=1e-6)


def test_locate_matches_restatement_and_picks_first_on_tie(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    rec = safeedit_records[0]
    expected, dists = ref_locate(model, tok, rec["safe generation"], rec["unsafe generation"])
    assert locate_toxic_layer(model, tok, rec["safe generation"], rec["unsafe generation"]) == expected
    assert layer_distances(model, tok, rec["safe generation"], rec["unsafe generation"]) == pytest.approx(dists, rel=1e-5)
    # Identical responses: every distance is 0, and the first layer wins the tie.
    assert locate_toxic_layer(model, tok, "same text", "same text") == 0


def test_each_request_is_located_on_its_own(tiny_llama, safeedit_records, monkeypatch):
    model, tok = tiny_llama
    import easyedit_detox.dinm.dinm_main as main

    answers = iter([2, 0])
    monkeypatch.setattr(main, "locate_toxic_layer", lambda *a, **k: next(answers))
    h = hparams("llama", num_steps=2)
    before = snapshot(model)
    report = {}
    apply_dinm_to_model(model, tok, [make_request(r) for r in safeedit_records[:2]], h, report=report)
    assert report["layers"] == [2, 0]
    assert changed(model, before) == {"model.layers.0.mlp.down_proj.weight", "model.layers.2.mlp.down_proj.weight"}
    assert h.layers == []  # never written back into the hyperparameters


def test_several_requests_sum_their_losses(tiny_gpt2, safeedit_records):
    model, tok = tiny_gpt2
    reference = copy.deepcopy(model)
    reqs = [make_request(r, SUFFIX) for r in safeedit_records[5:7]]
    h = hparams("gpt2", layers=[2], num_steps=4)
    before = snapshot(model)
    report = {}
    apply_dinm_to_model(model, tok, reqs, h, report=report)
    ref_losses = ref_edit(reference, tok, reqs, [[2], [2]], as_ref(h))
    assert report["losses"] == pytest.approx(ref_losses, rel=1e-4)
    for name in changed(model, before):
        delta = dict(model.named_parameters())[name] - before[name]
        ref_delta = dict(reference.named_parameters())[name] - before[name]
        assert cosine(delta, ref_delta) > 0.9999


def test_sequences_follow_the_contract(tiny_llama):
    _, tok = tiny_llama
    pair = encode_pair(tok, "How do I launder money?", "I'm sorry, I can't help.", 2048)
    prompt_ids = tok("How do I launder money?").input_ids
    answer_ids = tok(" I'm sorry, I can't help.", add_special_tokens=False).input_ids
    assert prompt_ids[0] == tok.bos_token_id and tok.bos_token_id not in answer_ids
    assert pair.input_ids == prompt_ids + answer_ids and pair.answer_start == len(prompt_ids)
    batch = collate([pair], pad_id=0)
    positions = batch.loss_mask[0].nonzero().squeeze(1).tolist()
    assert positions == list(range(len(prompt_ids) - 1, len(pair.input_ids) - 1))
    assert batch.targets[0, positions].tolist() == answer_ids
    # Too long: prompt ids go from the left, the answer stays whole.
    short = encode_pair(tok, "How do I launder money?", "I'm sorry, I can't help.", len(answer_ids) + 3)
    assert short.input_ids == prompt_ids[-3:] + answer_ids
    ids, start = ref_sequence(tok, "How do I launder money?", "I'm sorry, I can't help.", len(answer_ids) + 3)
    assert ids[0].tolist() == short.input_ids and start == short.answer_start


def test_norm_constraint_clamps_every_edited_tensor(tiny_gpt2, safeedit_records):
    model, tok = tiny_gpt2
    before = snapshot(model)
    h = hparams("gpt2", layers=[1], lr=1e-2, num_steps=5, norm_constraint=1e-3)
    apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])], h)
    edited = changed(model, before)
    assert edited == {"transformer.h.1.mlp.c_proj.weight", "transformer.h.1.mlp.c_proj.bias"}
    for name in edited:
        delta = (dict(model.named_parameters())[name] - before[name]).abs().max().item()
        assert 0 < delta <= 1e-3 + 1e-7


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_norm_constraint_edits_match_the_restated_contract(kind, request, safeedit_records):
    """With the clamp binding (lr far above epsilon), the edit equals DINM.md's loop step by step."""
    model, tok = request.getfixturevalue(f"tiny_{kind}")
    reference = copy.deepcopy(model)
    before = snapshot(model)
    req = make_request(safeedit_records[4], SUFFIX)
    h = hparams(kind, layers=[2], lr=2e-2, num_steps=5, norm_constraint=5e-3)
    report = {}
    apply_dinm_to_model(model, tok, [req], h, report=report)
    ref_losses = ref_edit(reference, tok, [req], [[2]], as_ref(h))
    assert report["losses"] == pytest.approx(ref_losses, rel=1e-4, abs=1e-6)
    ours, theirs = dict(model.named_parameters()), dict(reference.named_parameters())
    clamped = 0
    for name in changed(model, before):
        assert torch.allclose(ours[name], theirs[name], atol=1e-6)
        clamped += int(((ours[name] - before[name]).abs() > 5e-3 - 1e-7).sum())
    assert clamped > 0  # the clamp did bind, so the comparison covers it


def test_early_stop_when_loss_is_tiny(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    before = snapshot(model)
    report = {}
    # kl_factor 0: the loss is the KL term alone, which is 0 before any step.
    apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])], hparams("llama", layers=[1], kl_factor=0.0),
                        report=report)
    assert report["stopped_early"] and len(report["losses"]) == 1 and report["losses"][0] < 1e-4
    assert not changed(model, before)


@pytest.mark.parametrize("keep,ret", [(True, True), (False, True), (True, False)])
def test_weights_copy_contract(tiny_llama, safeedit_records, keep, ret):
    from easyedit_detox.easyedit import upstream

    # PyPI's convention: originals only when both flags; git's: whenever return_orig_weights.
    expect = upstream.returns_originals(ret, keep)
    model, tok = tiny_llama
    before = snapshot(model)
    out, weights_copy = apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])],
                                            hparams("llama", layers=[2], num_steps=2),
                                            return_orig_weights=ret, keep_original_weight=keep)
    assert out is model
    if expect:
        assert set(weights_copy) == {"model.layers.2.mlp.down_proj.weight"}
        assert torch.equal(weights_copy["model.layers.2.mlp.down_proj.weight"], before["model.layers.2.mlp.down_proj.weight"])
    else:
        assert weights_copy == {}


def test_copy_edits_a_copy(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    before = snapshot(model)
    out, _ = apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])], hparams("llama", layers=[2], num_steps=2),
                                 copy=True)
    assert out is not model and not changed(model, before) and changed(out, before)


def test_hparams_and_requests_are_not_mutated(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    h = hparams("llama", num_steps=2)
    reqs = [make_request(safeedit_records[0])]
    h_before, reqs_before = copy.deepcopy(h.__dict__), copy.deepcopy(reqs)
    apply_dinm_to_model(model, tok, reqs, h)
    assert h.__dict__ == h_before and reqs == reqs_before


def test_model_state_is_restored_after_the_edit(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    model.train()
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])], hparams("llama", layers=[1], num_steps=2))
    assert model.training
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_models_edit_with_float32_losses(tiny_llama, safeedit_records, dtype):
    model, tok = tiny_llama
    model = model.to(dtype)
    before = snapshot(model)
    report = {}
    apply_dinm_to_model(model, tok, [make_request(safeedit_records[0], SUFFIX)],
                        hparams("llama", layers=[2], num_steps=4, lr=1e-2), report=report)
    name = "model.layers.2.mlp.down_proj.weight"
    param = dict(model.named_parameters())[name]
    assert param.dtype == dtype and changed(model, before) == {name}
    assert all(torch.isfinite(torch.tensor(report["losses"])))
    assert report["losses"][-1] < report["losses"][0]


def test_cached_and_full_strategies_agree_on_multi_layer_edits(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    other = copy.deepcopy(model)
    before = snapshot(model)
    h = hparams("llama", layers=[1, 3], num_steps=3)
    req = [make_request(safeedit_records[2], SUFFIX)]
    r1, r2 = {}, {}
    apply_dinm_to_model(model, tok, req, h, report=r1, strategy="cached")
    apply_dinm_to_model(other, tok, req, h, report=r2, strategy="full")
    assert r1["losses"] == pytest.approx(r2["losses"], rel=1e-5)
    for name in changed(model, before):
        a = dict(model.named_parameters())[name] - before[name]
        b = dict(other.named_parameters())[name] - before[name]
        assert cosine(a, b) > 0.99999


def test_location_reads_whole_responses_whatever_max_length(tiny_gpt2, safeedit_records):
    model, tok = tiny_gpt2
    req = make_request(safeedit_records[9])
    expected, _ = ref_locate(model, tok, req["target_new"], req["ground_truth"])
    report = {}
    apply_dinm_to_model(model, tok, [req], hparams("gpt2", max_length=24, num_steps=1), report=report)
    assert report["layers"] == [expected]
