"""A model's parameters by name: exact digests, what changed since a moment, and writing originals back.

Digests are of the bytes of each tensor (dtype and shape included), so they change when any bit
does and never because of floating-point summation order. Change detection reads PyTorch's
per-tensor version counters, which every in-place write (an optimizer step, `copy_`, `w[...] = v`)
increments, so it costs nothing per element and also works on parameters that are offloaded or
on the meta device under a `device_map`.
"""

from __future__ import annotations

import hashlib
from typing import Dict, Iterable, List, Mapping, Tuple

import torch

META = "meta"


@torch.no_grad()
def tensor_digest(tensor: torch.Tensor) -> str:
    """A hex digest of a tensor's dtype, shape and bytes ('meta' for a tensor without data)."""
    if tensor.device.type == "meta":
        return META
    data = tensor.detach()
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{data.dtype}|{tuple(data.shape)}|".encode())
    if data.numel():
        flat = data.contiguous().reshape(-1).view(torch.uint8)
        h.update(flat.cpu().numpy())
    return h.hexdigest()


def digests(model, names: Iterable[str] = None) -> Dict[str, str]:
    """Digest of each named parameter of `model` (all of them when `names` is None)."""
    params = dict(model.named_parameters())
    wanted = params if names is None else {n: params[n] for n in names if n in params}
    return {n: tensor_digest(p) for n, p in wanted.items()}


def combined_digest(per_tensor: Mapping[str, str]) -> str:
    """One digest of a {name: digest} map (name order does not matter)."""
    h = hashlib.sha256()
    for name in sorted(per_tensor):
        h.update(f"{name}={per_tensor[name]};".encode())
    return h.hexdigest()


def _stamp(p: torch.Tensor) -> Tuple[int, int, int]:
    return (id(p), p._version, p.data_ptr() if p.device.type != "meta" else 0)


def stamps(model) -> Dict[str, Tuple[int, int, int]]:
    """Per parameter: identity, version counter and storage address, to compare with `changed_since`."""
    return {n: _stamp(p) for n, p in model.named_parameters()}


def changed_since(model, before: Mapping[str, Tuple[int, int, int]]) -> Tuple[List[str], List[str], List[str]]:
    """(written, added, removed) parameter names of `model` since `stamps(model)` returned `before`."""
    now = stamps(model)
    written = [n for n, s in now.items() if n in before and before[n] != s]
    added = [n for n in now if n not in before]
    removed = [n for n in before if n not in now]
    return written, added, removed


@torch.no_grad()
def copy_parameters(model, names: Iterable[str]) -> Dict[str, torch.Tensor]:
    """Clones of the named parameters (on their own devices)."""
    params = dict(model.named_parameters())
    return {n: params[n].detach().clone() for n in names}


@torch.no_grad()
def write_back(model, originals: Mapping[str, torch.Tensor]) -> None:
    """Copy each original tensor into the parameter of that name, in place."""
    params = dict(model.named_parameters())
    for name, original in originals.items():
        params[name].copy_(original.to(device=params[name].device, dtype=params[name].dtype))
