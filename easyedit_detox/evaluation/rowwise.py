"""Several edited models in one batch: each case's edited tensors apply to that case's rows only.

A DINM edit changes one linear map. After a case is edited its new tensors are kept and the model
is restored; one batched generation then serves many cases, with forward hooks that recompute the
edited module's output for each case's rows with that case's tensors (the way multi-adapter
serving gives each sequence its own adapter). Rows of other cases see the vanilla module.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn
from transformers.pytorch_utils import Conv1D

SUPPORTED = (nn.Linear, Conv1D)


def _split(name: str):
    module_name, _, param = name.rpartition(".")
    return module_name, param


def edited_modules(model, names: Sequence[str]) -> Optional[Dict[str, List[str]]]:
    """Group edited parameter names by owning module, or None when a module is not Linear/Conv1D."""
    groups: Dict[str, List[str]] = {}
    for name in names:
        module_name, param = _split(name)
        try:
            module = model.get_submodule(module_name)
        except AttributeError:
            return None
        if not isinstance(module, SUPPORTED) or param not in ("weight", "bias"):
            return None
        groups.setdefault(module_name, []).append(param)
    return groups


def _apply(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    if isinstance(module, Conv1D):  # GPT-2: x @ W + b, W is [in, out]
        out = torch.addmm(bias, x.reshape(-1, x.shape[-1]), weight) if bias is not None else \
            x.reshape(-1, x.shape[-1]) @ weight
        return out.reshape(*x.shape[:-1], weight.shape[-1])
    return nn.functional.linear(x, weight, bias)


class RowwiseEdits:
    """Edited tensors per case, and the rows of the current batch that belong to each case."""

    def __init__(self, model):
        self.model = model
        self.cases: Dict[int, Dict[str, torch.Tensor]] = {}  # case key -> {param name: edited tensor}
        self.rows: Dict[int, torch.Tensor] = {}

    def add(self, key: int, edited: Dict[str, torch.Tensor]) -> None:
        """Keep `edited` (parameter name -> edited tensor) for case `key`."""
        self.cases[key] = {n: t.detach().clone() for n, t in edited.items()}

    def set_rows(self, row_cases: Sequence[int]) -> None:
        """Say which case each row of the next batch belongs to (-1: no edit)."""
        owners = torch.tensor(list(row_cases))
        self.rows = {key: (owners == key).nonzero().squeeze(1) for key in self.cases}

    @contextmanager
    def active(self):
        """Install the hooks for the duration of a generation."""
        by_module: Dict[str, List[int]] = {}
        for key, tensors in self.cases.items():
            for module_name in {_split(name)[0] for name in tensors}:
                by_module.setdefault(module_name, []).append(key)
        handles = []
        for module_name, keys in by_module.items():
            module = self.model.get_submodule(module_name)
            handles.append(module.register_forward_hook(self._hook(module_name, module, keys)))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def _hook(self, module_name: str, module: nn.Module, keys: List[int]):
        def hook(mod, args, output):
            x = args[0]
            out = None
            for key in keys:
                rows = self.rows.get(key)
                if rows is None or rows.numel() == 0:
                    continue
                tensors = self.cases[key]
                weight = tensors.get(f"{module_name}.weight", module.weight)
                bias = tensors.get(f"{module_name}.bias", module.bias)
                rows = rows.to(x.device)
                if out is None:
                    out = output.clone()
                out[rows] = _apply(module, x[rows], weight, bias).to(out.dtype)
            return output if out is None else out
        return hook
