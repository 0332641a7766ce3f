"""How each DINM step gets the logits at the loss positions.

`full` is the straightforward path: every step runs the whole model on the edit and constraint
sequences. `cached` gives the same numbers with less work. The layers below the lowest edited
layer L never change during the edit, so one forward before the first step records what layer L
receives and returns; every step then starts at layer L. Where layer L's output is its input
plus the rewritten module's output (LLaMA, Mistral, Qwen2, GPT-2 ...), the step does not even run
layer L: its output is the recorded output minus the recorded module output plus the module
applied, with its current weights, to its recorded input (the reasoning ROME and MEMIT use to
cache keys). Logits are computed only at the positions the loss reads.
"""

from __future__ import annotations

import inspect
import logging
from contextlib import contextmanager
from typing import Dict, Optional, Tuple

import torch
from torch import nn

from .encode import Batch

LOG = logging.getLogger(__name__)

STRATEGIES = ("cached", "full")


class _NotCacheable(Exception):
    """The model or templates do not allow starting at the edited layer."""

# Decoder blocks whose output is `residual + mlp(x)` with the rewritten module last in the MLP
# (eval-mode dropout is the identity), so the edited layer's output is linear in that module's.
ADDITIVE_MLP_BLOCKS = {
    "LlamaDecoderLayer", "MistralDecoderLayer", "Qwen2DecoderLayer", "Qwen3DecoderLayer",
    "GPT2Block", "GPTJBlock",
}


def make_forward(strategy: str, model, hparams, plan, edit_batch: Batch, constraint_batch: Batch):
    """The forward strategy named `strategy` ('cached' or 'full') for this edit."""
    if strategy == "full":
        return FullForward(model, edit_batch, constraint_batch)
    if strategy == "cached":
        try:
            return CachedForward(model, hparams, plan, edit_batch, constraint_batch)
        except _NotCacheable as exc:
            LOG.info("DINM runs the full model every step: %s", exc)
            return FullForward(model, edit_batch, constraint_batch)
    raise ValueError(f"Unknown DINM forward strategy {strategy!r}. Available: {list(STRATEGIES)}")


class FullForward:
    """Straightforward path: the whole model on each batch, every step."""

    def __init__(self, model, edit_batch: Batch, constraint_batch: Batch):
        self.model, self.edit_batch, self.constraint_batch = model, edit_batch, constraint_batch

    def _answer_logits(self, batch: Batch) -> torch.Tensor:
        logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False).logits
        return logits[batch.loss_mask.to(logits.device)]

    def base_constraint_logits(self) -> torch.Tensor:
        return self._answer_logits(self.constraint_batch)

    def logits(self, constraint_grad: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        """Answer logits of the edit and constraint batches with the current weights."""
        edit = self._answer_logits(self.edit_batch)
        with torch.set_grad_enabled(constraint_grad and torch.is_grad_enabled()):
            constraint = self._answer_logits(self.constraint_batch)
        return edit, constraint


def _layer_list(model, layer_module_tmp: str) -> Tuple[nn.ModuleList, str]:
    """The ModuleList holding the decoder layers named by `layer_module_tmp` ('model.layers.{}')."""
    prefix = layer_module_tmp.split("{}")[0].rstrip(".")
    try:
        layers = model.get_submodule(prefix)
    except AttributeError:
        layers = None
    if not isinstance(layers, nn.ModuleList) or layer_module_tmp.format(0) != f"{prefix}.0":
        raise _NotCacheable(f"hparams 'layer_module_tmp' {layer_module_tmp!r} does not name the decoder "
                         f"layers of {type(model).__name__} as '<list>.{{}}'")
    return layers, prefix


def _owning_module(model, param_name: str) -> Tuple[str, nn.Module]:
    module_name = param_name.rsplit(".", 1)[0]
    return module_name, model.get_submodule(module_name)


def _pack(structure, hidden: torch.Tensor):
    """Return `hidden` shaped like a decoder layer's output (a tensor, or a tuple led by it)."""
    if structure is None:
        return hidden
    return (hidden,) + (None,) * (structure - 1)


class _Stand(nn.Module):
    """Stands in for a decoder layer: forwards attribute look-ups to it, computes nothing of it."""

    def __init__(self, original: nn.Module, fn):
        super().__init__()
        object.__setattr__(self, "_original", original)  # not registered: keeps its parameters out
        object.__setattr__(self, "_fn", fn)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(object.__getattribute__(self, "_original"), name)

    def forward(self, hidden_states, *args, **kwargs):
        return self._fn(hidden_states)


class CachedForward(FullForward):
    """Runs only the layers from the lowest edited one up, replaying what step 1 recorded below them."""

    def __init__(self, model, hparams, plan, edit_batch: Batch, constraint_batch: Batch):
        super().__init__(model, edit_batch, constraint_batch)
        self.layers, _ = _layer_list(model, hparams.layer_module_tmp)
        self.start = min(layer for layers in plan.layers for layer in layers)
        start_prefix = hparams.layer_module_tmp.format(self.start) + "."
        in_start = [n for n in plan.param_names if n.startswith(start_prefix)]
        if not in_start or len(self.layers) <= self.start:
            raise _NotCacheable(f"no edited parameter lies under {start_prefix!r}")
        owners = {_owning_module(model, n)[0] for n in in_start}
        self.additive = (type(self.layers[self.start]).__name__ in ADDITIVE_MLP_BLOCKS and len(owners) == 1)
        self.module = _owning_module(model, in_start[0])[1] if self.additive else None
        self.keep_param = "logits_to_keep" in inspect.signature(model.forward).parameters
        self.structure = None
        self.combined: Optional[Batch] = None
        self.caches: Dict[int, dict] = {}
        self._prepare(hparams.constraint_grad)

    # -- recording ------------------------------------------------------------------------
    def _prepare(self, constraint_grad: bool) -> None:
        e, c = self.edit_batch, self.constraint_batch
        size = lambda b: b.input_ids.shape[0] * b.input_ids.shape[1]
        width = max(e.input_ids.shape[1], c.input_ids.shape[1])
        together = (e.input_ids.shape[0] + c.input_ids.shape[0]) * width
        # One forward for both batches pays off only when padding to a common width costs little,
        # and only when both terms carry gradient (otherwise the constraint runs without a graph).
        if constraint_grad and together <= 1.1 * (size(e) + size(c)):
            self.combined = _concat(e, c)

    def _record(self, batch: Batch) -> torch.Tensor:
        """A full forward of `batch` (step 1's, or the base pass) recording what later steps replay."""
        cache: dict = {}
        layer = self.layers[self.start]

        def on_layer_in(module, args, kwargs):
            cache["layer_in"] = (args[0] if args else kwargs["hidden_states"]).detach()

        def on_layer_out(module, args, output):
            self.structure = len(output) if isinstance(output, tuple) else None
            cache["layer_out"] = (output[0] if isinstance(output, tuple) else output).detach()

        handles = [layer.register_forward_pre_hook(on_layer_in, with_kwargs=True),
                   layer.register_forward_hook(on_layer_out)]
        if self.additive:
            def on_module(module, args, output):
                cache["module_in"] = args[0].detach()
                cache["module_out"] = output.detach()
            handles.append(self.module.register_forward_hook(on_module))
        try:
            logits = self._run(batch)
        finally:
            for h in handles:
                h.remove()
        if self.additive:
            cache["rest"] = cache["layer_out"] - cache["module_out"]
            del cache["layer_out"], cache["module_out"], cache["layer_in"]
        self.caches[id(batch)] = cache
        return logits

    # -- stepping -------------------------------------------------------------------------
    def _run(self, batch: Batch) -> torch.Tensor:
        """Answer logits of `batch` with the model as currently wired."""
        columns = batch.loss_mask.any(dim=0).nonzero().squeeze(1)
        kwargs = {"logits_to_keep": columns} if self.keep_param else {}
        logits = self.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                            use_cache=False, **kwargs).logits
        if not self.keep_param:
            logits = logits[:, columns.to(logits.device)]
        return logits[batch.loss_mask[:, columns].to(logits.device)]

    @contextmanager
    def _from_start(self, batch: Batch):
        """Swap the layers below (and, when additive, at) the start for stand-ins replaying the cache."""
        cache = self.caches[id(batch)]
        originals = [self.layers[i] for i in range(self.start + 1)]
        structure = self.structure
        for i in range(self.start):
            self.layers[i] = _Stand(originals[i], lambda h: _pack(structure, h))
        handle = None
        if self.additive:
            module = self.module
            self.layers[self.start] = _Stand(
                originals[self.start], lambda h: _pack(structure, cache["rest"] + module(cache["module_in"])))
        else:
            def replace_input(mod, args, kwargs):
                if args:
                    return (cache["layer_in"],) + tuple(args[1:]), kwargs
                return args, {**kwargs, "hidden_states": cache["layer_in"]}
            handle = originals[self.start].register_forward_pre_hook(replace_input, with_kwargs=True)
        try:
            yield
        finally:
            if handle is not None:
                handle.remove()
            for i, layer in enumerate(originals):
                self.layers[i] = layer

    def _step_logits(self, batch: Batch) -> torch.Tensor:
        with self._from_start(batch):
            return self._run(batch)

    def _answer_logits(self, batch: Batch) -> torch.Tensor:
        """Step 1 runs the whole model once, recording; later steps start at the edited layer."""
        if id(batch) in self.caches:
            return self._step_logits(batch)
        return self._record(batch)

    def base_constraint_logits(self) -> torch.Tensor:
        if self.combined is not None:
            return self._run(self.constraint_batch)  # step 1 records the combined batch instead
        return self._record(self.constraint_batch)

    def logits(self, constraint_grad: bool) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.combined is None:
            return super().logits(constraint_grad)
        logits = self._answer_logits(self.combined)
        n_edit = int(self.edit_batch.loss_mask.sum())
        return logits[:n_edit], logits[n_edit:]


def _concat(a: Batch, b: Batch) -> Batch:
    """Stack two right-padded batches into one, padding the narrower on the right."""
    width = max(a.input_ids.shape[1], b.input_ids.shape[1])

    def widen(t: torch.Tensor, fill) -> torch.Tensor:
        if t.shape[1] == width:
            return t
        pad = torch.full((t.shape[0], width - t.shape[1]), fill, dtype=t.dtype, device=t.device)
        return torch.cat([t, pad], dim=1)

    # Right padding under a causal mask never reaches a real position, so the pad id is moot.
    return Batch(
        torch.cat([widen(a.input_ids, 0), widen(b.input_ids, 0)]),
        torch.cat([widen(a.attention_mask, 0), widen(b.attention_mask, 0)]),
        torch.cat([widen(a.loss_mask, False), widen(b.loss_mask, False)]),
        torch.cat([widen(a.targets, 0), widen(b.targets, 0)]),
    )
