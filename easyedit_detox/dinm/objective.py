"""DINM's objective: kl_factor * NLL(y_safe | x) + KL(p_base || p_edited) on (x_k, y_k) (DINM.md section 4)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .encode import Batch


def answer_log_probs(answer_logits: torch.Tensor) -> torch.Tensor:
    """Float32 log-softmax of the logits at the loss positions ([positions, vocab], row order)."""
    return F.log_softmax(answer_logits.float(), dim=-1)


def _per_sequence_mean(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Average flattened per-position values within each sequence -> [B]."""
    counts = batch.loss_mask.sum(dim=1)
    rows = torch.repeat_interleave(torch.arange(len(counts), device=values.device), counts.to(values.device))
    sums = torch.zeros(len(counts), dtype=values.dtype, device=values.device).index_add(0, rows, values)
    return sums / counts.to(values.dtype)


def edit_nll(answer_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """Mean negative log-likelihood of each sequence's answer tokens -> [B]."""
    log_probs = answer_log_probs(answer_logits)
    targets = batch.targets[batch.loss_mask].to(log_probs.device)
    nll = -log_probs.gather(1, targets.unsqueeze(1)).squeeze(1)
    return _per_sequence_mean(nll, batch)


def constraint_kl(base_log_probs: torch.Tensor, answer_logits: torch.Tensor, batch: Batch) -> torch.Tensor:
    """KL(p_base || p_edited) per answer position, averaged within each sequence -> [B]."""
    log_probs = answer_log_probs(answer_logits)
    base = base_log_probs.to(log_probs.device)
    kl = (base.exp() * (base - log_probs)).sum(dim=-1)
    return _per_sequence_mean(kl, batch)


def total_loss(nll: torch.Tensor, kl: torch.Tensor, kl_factor: float) -> torch.Tensor:
    """Sum over requests of kl_factor * L_edit + L_constraint (EasyEdit's name for the weight)."""
    return (kl_factor * nll + kl).sum()
