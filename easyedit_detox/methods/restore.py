"""Undoing an EasyEdit edit from what the method's apply function returned."""

from __future__ import annotations

import torch


@torch.no_grad()
def restore_weights(model, edited_model, weights_copy, alg_name: str) -> None:
    """Write the originals back, as BaseEditor does (LoRA unloads its adapter, KN calls its unpatch)."""
    if alg_name == "LoRA" and hasattr(edited_model, "unload"):
        edited_model.unload()
        return
    if callable(weights_copy):
        weights_copy()
        return
    params = dict(model.named_parameters())
    for name, original in weights_copy.items():
        params[name].copy_(original.to(params[name].device))
