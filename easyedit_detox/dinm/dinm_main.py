"""DINM's edit loop and `apply_dinm_to_model`, EasyEdit's entry point for the method."""

from __future__ import annotations

import logging
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch

from easyedit_detox.core.errors import RequestError
from easyedit_detox.easyedit.upstream import returns_originals
from easyedit_detox.core.weights import write_back
from easyedit_detox.core.devices import input_device
from easyedit_detox.core.modes import eval_mode
from .encode import Batch, collate, encode_pair, pad_token_id
from .forward import make_forward
from .hparams import DINMHyperParams
from .locate import locate_toxic_layer
from .objective import answer_log_probs, constraint_kl, edit_nll, total_loss
from .requests import as_request_list, check_request, constraint_pair
from .tensors import check_layers, select_edited_parameters

LOG = logging.getLogger(__name__)

EARLY_STOP_LOSS = 1e-4


@dataclass
class EditPlan:
    """Everything decided before the model changes: layers, tensors and token sequences."""

    layers: List[List[int]]  # the layers edited for each request
    param_names: List[str]
    edit_batch: Batch
    constraint_batch: Batch


@dataclass
class EditReport:
    """What one DINM call did, as plain data (the demo prints it; tests read it)."""

    layers: List[int] = field(default_factory=list)
    edited: List[str] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)
    edit_terms: List[float] = field(default_factory=list)
    constraint_terms: List[float] = field(default_factory=list)
    stopped_early: bool = False

    def as_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def coerce_hparams(hparams) -> DINMHyperParams:
    """Our DINMHyperParams from any object with the DINM keys (e.g. EasyEdit-git's own class)."""
    if isinstance(hparams, DINMHyperParams):
        return hparams
    import dataclasses

    values = {f.name: getattr(hparams, f.name) for f in dataclasses.fields(DINMHyperParams)
              if hasattr(hparams, f.name)}
    return DINMHyperParams.from_dict(values, source=type(hparams).__name__)


def plan_edit(model, tok, requests: List[Dict[str, Any]], hparams: DINMHyperParams) -> EditPlan:
    """Validate the requests and decide layers, tensors and sequences without changing the model."""
    hparams = coerce_hparams(hparams)
    fixed = hparams.edit_layers()
    if fixed is not None:
        check_layers(model, fixed)
    for i, request in enumerate(requests):
        check_request(request, i, needs_ground_truth=fixed is None)
    if fixed is not None:
        per_request = [sorted(set(fixed)) for _ in requests]
    else:
        per_request = [[locate_toxic_layer(model, tok, r["target_new"], r["ground_truth"])]
                       for r in requests]
    union = sorted({layer for layers in per_request for layer in layers})
    params = select_edited_parameters(model, hparams.rewrite_module_tmp, union)
    try:
        edit_pairs = [encode_pair(tok, r["prompt"], r["target_new"], hparams.max_length) for r in requests]
        constraint_pairs = [encode_pair(tok, *constraint_pair(r), hparams.max_length) for r in requests]
    except ValueError as exc:
        raise RequestError(f"cannot encode a DINM request: {exc}") from None
    pad = pad_token_id(tok)
    return EditPlan(
        layers=per_request,
        param_names=list(params),
        edit_batch=collate(edit_pairs, pad),
        constraint_batch=collate(constraint_pairs, pad),
    )


class _Masters:
    """Float32 copies of low-precision edited tensors, so Adam's state and steps stay in float32."""

    def __init__(self, params: List[torch.nn.Parameter]):
        self.params = params
        self.tensors = [p if p.dtype == torch.float32 else p.detach().float().clone().requires_grad_(True)
                        for p in params]

    def pull_grads(self) -> None:
        for p, m in zip(self.params, self.tensors):
            if m is not p:
                m.grad = None if p.grad is None else p.grad.float()
                p.grad = None

    @torch.no_grad()
    def push(self) -> None:
        for p, m in zip(self.params, self.tensors):
            if m is not p:
                p.copy_(m)


def run_edit_loop(model, plan: EditPlan, hparams: DINMHyperParams, strategy: str = "cached",
                  on_step: Optional[Callable[[int, float], None]] = None) -> EditReport:
    """Tune the planned tensors in place with Adam for up to `num_steps` steps (DINM.md section 5)."""
    named = dict(model.named_parameters())
    params = [named[n] for n in plan.param_names]
    report = EditReport(edited=list(plan.param_names))
    device = input_device(model)
    edit_batch, constraint_batch = plan.edit_batch.to(device), plan.constraint_batch.to(device)

    forward = make_forward(strategy, model, hparams, plan, edit_batch, constraint_batch)
    with torch.no_grad():
        base_log_probs = answer_log_probs(forward.base_constraint_logits())

    masters = _Masters(params)
    originals = [m.detach().clone() for m in masters.tensors]
    optimizer = torch.optim.Adam(masters.tensors, lr=hparams.lr, weight_decay=hparams.weight_decay)
    eps = hparams.norm_constraint if hparams.norm_constraint is not False else None

    for step in range(hparams.num_steps):
        edit_logits, constraint_logits = forward.logits(constraint_grad=hparams.constraint_grad)
        nll = edit_nll(edit_logits, edit_batch)
        kl = constraint_kl(base_log_probs, constraint_logits, constraint_batch)
        loss = total_loss(nll, kl, hparams.kl_factor)
        value = float(loss.detach())
        report.losses.append(value)
        report.edit_terms.append(float(nll.detach().sum()))
        report.constraint_terms.append(float(kl.detach().sum()))
        LOG.debug("DINM step %d/%d: loss %.6f (edit NLL %.4f, constraint KL %.6f)",
                 step + 1, hparams.num_steps, value, report.edit_terms[-1], report.constraint_terms[-1])
        if on_step is not None:
            on_step(step, value)
        if value < EARLY_STOP_LOSS:
            report.stopped_early = True
            break
        optimizer.zero_grad(set_to_none=True)
        for p in params:
            p.grad = None
        loss.backward()
        masters.pull_grads()
        optimizer.step()
        if eps is not None:
            with torch.no_grad():
                for m, o in zip(masters.tensors, originals):
                    m.copy_(torch.clamp(m, min=o - eps, max=o + eps))
        masters.push()
    for p in params:
        p.grad = None
    return report


def execute_dinm(model, tok, requests, hparams: DINMHyperParams, strategy: str = "cached",
                 on_step: Optional[Callable[[int, float], None]] = None):
    """Edit `model` in place; returns (original tensors by name, EditReport)."""
    requests = as_request_list(requests)
    hparams = coerce_hparams(hparams)
    with eval_mode(model):
        plan = plan_edit(model, tok, requests, hparams)
    return _edit_planned(model, plan, hparams, strategy, on_step)


def _edit_planned(model, plan: EditPlan, hparams, strategy, on_step):
    named = dict(model.named_parameters())
    originals = {n: named[n].detach().clone() for n in plan.param_names}
    flags = {n: p.requires_grad for n, p in named.items()}
    try:
        with eval_mode(model):  # DINM.md: no dropout during the edit
            for n, p in named.items():
                p.requires_grad_(n in originals)
            report = run_edit_loop(model, plan, hparams, strategy=strategy, on_step=on_step)
    except BaseException:
        # Never leave a half-edited model behind (OOM, Ctrl-C, ...).
        write_back(model, originals)
        raise
    finally:
        for n, p in named.items():
            p.requires_grad_(flags[n])
    # One layer per request reads as EasyEdit's `[3]`; several fixed layers stay a list each.
    report.layers = [layers[0] if len(layers) == 1 else layers for layers in plan.layers]
    LOG.debug("DINM edited %s (layers %s) in %d steps", plan.param_names, plan.layers, len(report.losses))
    return originals, report


def apply_dinm_to_model(model, tok, requests, hparams: DINMHyperParams, copy: bool = False,
                        return_orig_weights: bool = False, keep_original_weight: bool = False, **kwargs):
    """Apply DINM to `model` (EasyEdit's apply-function contract); returns (model, weights_copy).

    Extra keyword arguments: `report` (a dict filled with the located layers and the loss curve),
    `strategy` ("cached", the default, or "full", the straightforward every-step full forward).
    """
    requests = as_request_list(requests)
    hparams = coerce_hparams(hparams)
    with eval_mode(model):  # the toxic layer is located with dropout off, as the edit runs
        plan = plan_edit(model, tok, requests, hparams)
    if copy:
        model = deepcopy(model)
    originals, report = _edit_planned(model, plan, hparams, kwargs.get("strategy", "cached"), kwargs.get("on_step"))
    if isinstance(kwargs.get("report"), dict):
        kwargs["report"].update(report.as_dict())
    weights_copy = originals if returns_originals(return_orig_weights, keep_original_weight) else {}
    return model, weights_copy
