"""Locating the toxic layer: where the safe and unsafe responses' hidden states differ most."""

from __future__ import annotations

from typing import List

import torch

from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.core.devices import input_device
from .encode import pad_token_id


def num_layers(model) -> int:
    """Number of decoder layers of a transformers causal LM."""
    config = model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, key, None)
        if isinstance(value, int):
            return value
    raise HyperParamsError(f"cannot tell how many decoder layers {type(model).__name__} has from its config "
                           "(no num_hidden_layers, n_layer or num_layers); set the hparams' layers: [N] to name "
                           "the layer to edit instead of locating it")


def layer_distances(model, tok, safe: str, unsafe: str) -> List[float]:
    """d_i = ||H_i[safe] - H_i[unsafe]||_F for decoder layers i = 1..N over the right-padded batch."""
    # DINM.md tokenizes the whole responses; only a model's own context window cuts them (a
    # response longer than the positions the model has would crash the forward pass).
    window = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    ids = [list(tok(text).input_ids)[:window] for text in (safe, unsafe)]
    width = max(len(x) for x in ids)
    pad = pad_token_id(tok)
    input_ids = torch.tensor([x + [pad] * (width - len(x)) for x in ids])
    mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
    device = input_device(model)
    with torch.no_grad():
        out = model(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                    output_hidden_states=True, use_cache=False)
    distances = []
    for hidden in out.hidden_states[1:]:
        diff = hidden[0].float() - hidden[1].float()
        distances.append(float(torch.linalg.vector_norm(diff)))
    return distances


def locate_toxic_layer(model, tok, safe: str, unsafe: str) -> int:
    """0-based index of the decoder layer whose output separates safe from unsafe most (first on ties)."""
    distances = layer_distances(model, tok, safe, unsafe)
    best = 0
    for i, d in enumerate(distances):
        if d > distances[best]:
            best = i
    return best
