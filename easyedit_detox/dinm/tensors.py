"""Which parameters a DINM edit changes (DINM.md section 2)."""

from __future__ import annotations

from typing import Dict, Iterable, List

import torch

from easyedit_detox.core.errors import HyperParamsError
from .locate import num_layers


def matches_template(name: str, module_name: str) -> bool:
    """True when parameter `name` is `module_name` itself or lives under it."""
    return name == module_name or name.startswith(module_name + ".")


def check_layers(model, layers: Iterable[int], source: str = "hparams 'layers'") -> None:
    """Raise HyperParamsError when a layer index is outside the model's decoder layers."""
    total = num_layers(model)
    for layer in layers:
        if not (0 <= layer < total):
            raise HyperParamsError(f"{source} holds layer {layer}, but the model has {total} decoder "
                                   f"layers (valid indices 0..{total - 1})")


def select_edited_parameters(model, template: str, layers: Iterable[int]) -> Dict[str, torch.nn.Parameter]:
    """Map each parameter name matched by `template.format(layer)` to the parameter, in model order."""
    wanted: List[str] = [template.format(layer) for layer in sorted(set(layers))]
    named = dict(model.named_parameters())
    selected: Dict[str, torch.nn.Parameter] = {}
    for module_name in wanted:
        found = {n: p for n, p in named.items() if matches_template(n, module_name)}
        if not found:
            examples = [n for n in named if ".mlp." in n][:4] or list(named)[:4]
            raise HyperParamsError(
                f"hparams 'rewrite_module_tmp' {template!r} gives {module_name!r}, which names no "
                f"parameter of {type(model).__name__}; real names look like {examples}")
        selected.update(found)
    return {n: selected[n] for n in named if n in selected}
