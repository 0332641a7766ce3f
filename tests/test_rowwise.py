"""Per-row edited tensors in one batch give each row the output of its own edited model."""

import copy

import torch

from easyedit_detox.evaluation.rowwise import RowwiseEdits, edited_modules


def test_rows_see_their_own_edit_and_others_the_vanilla_model(tiny_gpt2):
    model, _ = tiny_gpt2
    ids = torch.randint(0, 100, (3, 7))
    edited = {}
    models = []
    for key, name in enumerate(["transformer.h.1.mlp.c_proj.weight", "transformer.h.2.mlp.c_fc.bias"]):
        m = copy.deepcopy(model)
        with torch.no_grad():
            dict(m.named_parameters())[name].add_(0.5)
        models.append(m)
        edited[key] = {name: dict(m.named_parameters())[name]}
    edits = RowwiseEdits(model)
    for key, tensors in edited.items():
        edits.add(key, tensors)
    edits.set_rows([1, -1, 0])
    with torch.no_grad(), edits.active():
        out = model(ids).logits
        base = None
    with torch.no_grad():
        base = model(ids).logits  # hooks gone: the vanilla model again
        want0 = models[0](ids[2:3]).logits
        want1 = models[1](ids[0:1]).logits
    assert torch.allclose(out[2:3], want0, atol=1e-5) and torch.allclose(out[0:1], want1, atol=1e-5)
    assert torch.equal(out[1], base[1]) and not torch.allclose(out[0], base[0])


def test_only_linear_maps_are_batched(tiny_llama):
    model, _ = tiny_llama
    assert edited_modules(model, ["model.layers.0.mlp.down_proj.weight"]) == {"model.layers.0.mlp.down_proj": ["weight"]}
    assert edited_modules(model, ["model.layers.0.input_layernorm.weight"]) is None
