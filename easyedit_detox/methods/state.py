"""Everything an EasyEdit method may change about a model besides parameter values, captured and put back.

Methods leave traces: peft wraps Linear layers in adapter layers and sets `peft_config`, LoRA turns
on gradient checkpointing and registers an input-embedding hook, MEND and FT switch
`requires_grad` off, GRACE and WISE swap a layer for a wrapper. `ModelState.capture` records, for
every module, its attribute dict (children, parameter and buffer slots, hooks, flags such as
`training` and `gradient_checkpointing`), the config, each parameter's `requires_grad` and grad,
and the tokenizer settings generation depends on; `restore` puts all of it back, so the model
object the caller holds is structurally the one it was (values are `weights.write_back`'s job).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

_TOKENIZER_FIELDS = ("padding_side", "truncation_side", "model_max_length")


def _snapshot_dict(obj) -> Dict[str, Any]:
    """A copy of `obj.__dict__` in which dict values (children, parameter slots, hooks) are copied one level."""
    return {k: (type(v)(v) if isinstance(v, dict) else v) for k, v in vars(obj).items()}


def _restore_dict(obj, snapshot: Dict[str, Any]) -> None:
    current = vars(obj)
    for key in [k for k in current if k not in snapshot]:
        del current[key]
    for key, value in snapshot.items():
        now = current.get(key)
        if isinstance(value, dict) and isinstance(now, dict) and type(now) is type(value):
            if now != value or list(now) != list(value):
                now.clear()
                now.update(value)  # the same dict object: other references to it stay valid
        elif now is not value:
            current[key] = value


@dataclass
class ModelState:
    """A model's (and its tokenizer's) non-value state at one moment."""

    modules: List[Tuple[nn.Module, Dict[str, Any]]]
    configs: List[Tuple[Any, Dict[str, Any]]]
    params: List[Tuple[torch.nn.Parameter, bool, bool, frozenset]]  # requires_grad, grad was None, attribute names
    tokenizer: Tuple[Any, Dict[str, Any]]

    @classmethod
    def capture(cls, model: nn.Module, tokenizer=None) -> "ModelState":
        """Record the state of `model` (every submodule) and of `tokenizer`."""
        modules = [(m, _snapshot_dict(m)) for m in model.modules()]
        configs = [(c, _snapshot_dict(c)) for c in (getattr(model, "config", None),
                                                    getattr(model, "generation_config", None)) if c is not None]
        # MEND stores activations on the weights themselves (`__x__`, `__delta__`): attributes are dropped after.
        params = [(p, p.requires_grad, p.grad is None, frozenset(vars(p))) for p in model.parameters()]
        tok = {f: getattr(tokenizer, f) for f in _TOKENIZER_FIELDS if hasattr(tokenizer, f)}
        if tokenizer is not None:
            tok["pad_token"] = tokenizer.pad_token
        return cls(modules, configs, params, (tokenizer, tok))

    def restore(self) -> None:
        """Put every recorded module attribute, config field, gradient flag and tokenizer setting back."""
        for module, snapshot in self.modules:
            _restore_dict(module, snapshot)
        for config, snapshot in self.configs:
            _restore_dict(config, snapshot)
        for param, requires_grad, grad_was_none, attributes in self.params:
            param.requires_grad_(requires_grad)
            if grad_was_none:
                param.grad = None
            for name in [n for n in vars(param) if n not in attributes]:
                delattr(param, name)
        tokenizer, fields = self.tokenizer
        for field, value in fields.items():
            if getattr(tokenizer, field, None) != value:
                setattr(tokenizer, field, value)
