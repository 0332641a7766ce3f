"""Edit patches: the parameters an edit changed, before and after, in one safetensors file.

A patch holds, for each changed parameter N, the tensor `edited.N` and the tensor `base.N`:
applying copies the edited values in and reverting copies the base values back, both bit-exact
(`base + delta - delta` would not be). The safetensors metadata key `easyedit_detox.patch` holds
JSON: format and version, the base model's fingerprint, the method, its hparams, the record ids,
the package version, and per tensor the digests of the base and the edited values. Apply and
revert check every digest before writing anything.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Union

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import replaced_atomically
from easyedit_detox.core.weights import META, tensor_digest
from .save import package_version as _package_version

FORMAT = "easyedit-detox-patch"
FORMAT_VERSION = 1
METADATA_KEY = "easyedit_detox.patch"
EDITED = "edited."
BASE = "base."


@dataclass(eq=False)
class Patch:
    """The changed parameters of an edit (base and edited values) and what made them."""

    base: Dict[str, torch.Tensor]
    edited: Dict[str, torch.Tensor]
    metadata: dict
    path: Optional[str] = None

    @property
    def names(self) -> List[str]:
        """The patched parameter names, sorted."""
        return sorted(self.edited)

    @property
    def base_digests(self) -> Dict[str, str]:
        """Per parameter, the digest of its values before the edit."""
        return {n: d["base"] for n, d in self.metadata["tensors"].items()}

    @property
    def edited_digests(self) -> Dict[str, str]:
        """Per parameter, the digest of its values after the edit."""
        return {n: d["edited"] for n, d in self.metadata["tensors"].items()}

    @property
    def label(self) -> str:
        """How messages name this patch: its file, or 'in memory'."""
        return repr(self.path) if self.path else "(in memory)"

    def save(self, path: Union[str, os.PathLike]) -> str:
        """Write the patch to `path` so that readers see the old file or the new one; returns the path."""
        path = os.fspath(path)
        tensors = {EDITED + n: t for n, t in self.edited.items()}
        tensors.update({BASE + n: t for n, t in self.base.items()})
        header = {"format": "pt", METADATA_KEY: json.dumps(self.metadata, sort_keys=True)}
        _save_file_atomically(tensors, header, path)
        self.path = path
        return path


def make_patch(base_tensors: Mapping[str, torch.Tensor], edited_tensors: Mapping[str, torch.Tensor], *,
               base_fingerprint: str, method: str, hparams, record_ids: Iterable,
               package_version: Optional[str] = None, prompt_format: str = "raw") -> Patch:
    """A patch of the parameters whose edited values differ from their base values (unchanged ones are left out)."""
    _check_pairs(base_tensors, edited_tensors)
    base, edited, digests = {}, {}, {}
    for name in sorted(edited_tensors):
        before, after = tensor_digest(base_tensors[name]), tensor_digest(edited_tensors[name])
        if before == after:
            continue
        base[name], edited[name] = _cpu_copy(base_tensors[name]), _cpu_copy(edited_tensors[name])
        digests[name] = {"base": before, "edited": after}
    if dataclasses.is_dataclass(hparams) and not isinstance(hparams, type):
        hparams = dataclasses.asdict(hparams)
    metadata = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "base_fingerprint": base_fingerprint,
        "method": method, "hparams": dict(hparams or {}), "record_ids": list(record_ids or []),
        "prompt_format": prompt_format,
        "package_version": package_version or _package_version(), "tensors": digests,
    }
    # Round-trip through JSON now, so that what `save` writes is what this object holds
    # (tuples become lists, paths and dtypes strings).
    metadata = json.loads(json.dumps(metadata, default=str))
    return Patch(base=base, edited=edited, metadata=metadata)


def _check_pairs(base_tensors: Mapping[str, torch.Tensor], edited_tensors: Mapping[str, torch.Tensor]) -> None:
    """UserError unless both maps name the same tensors, pairwise of one dtype and shape, with data."""
    if set(base_tensors) != set(edited_tensors):
        only_base = sorted(set(base_tensors) - set(edited_tensors))
        only_edited = sorted(set(edited_tensors) - set(base_tensors))
        raise UserError(f"make_patch needs the same parameter names before and after the edit; only in base: "
                        f"{only_base}, only in edited: {only_edited}")
    for name, after in edited_tensors.items():
        before = base_tensors[name]
        if before.dtype != after.dtype or before.shape != after.shape:
            raise UserError(f"make_patch: parameter {name} is {before.dtype} {tuple(before.shape)} before the edit "
                            f"and {after.dtype} {tuple(after.shape)} after; pass tensors of one model in one dtype")
        if META in (before.device.type, after.device.type):
            raise UserError(f"make_patch: parameter {name} has no data (meta device, offloaded); load the model "
                            "without offloading to make a patch")


def _cpu_copy(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous CPU copy of `tensor` that shares no storage with it."""
    return tensor.detach().to("cpu", copy=True).contiguous()


def _save_file_atomically(tensors: Dict[str, torch.Tensor], header: Dict[str, str], path: str) -> None:
    """safetensors' save_file to a temporary sibling of `path`, flushed, then renamed over `path`."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with replaced_atomically(path) as tmp:
        save_file(tensors, tmp, metadata=header)


def load_patch(path: Union[str, os.PathLike]) -> Patch:
    """The patch saved at `path`; UserError for a missing, unreadable, foreign or damaged file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"patch file {path!r} does not exist; pass the .safetensors file the edit wrote")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"patch file {path!r} is not a safetensors file ({' '.join(str(exc).split())}); "
                        "pass the .safetensors file the edit wrote") from None
    metadata = _read_metadata(path, header)
    base = {k[len(BASE):]: t for k, t in tensors.items() if k.startswith(BASE)}
    edited = {k[len(EDITED):]: t for k, t in tensors.items() if k.startswith(EDITED)}
    _check_contents(path, metadata, tensors, base, edited)
    return Patch(base=base, edited=edited, metadata=metadata, path=path)


def _read_metadata(path: str, header: Mapping[str, str]) -> dict:
    """Our JSON metadata from a safetensors header; UserError when it is absent or from a newer format."""
    text = header.get(METADATA_KEY)
    if text is None:
        raise UserError(f"file {path!r} is a safetensors file but not an easyedit-detox patch (no "
                        f"{METADATA_KEY!r} metadata); pass a patch file the edit wrote")
    try:
        metadata = json.loads(text)
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT or \
            not isinstance(metadata.get("tensors"), dict):
        raise UserError(f"patch file {path!r} has unreadable {METADATA_KEY!r} metadata; make the patch again")
    version = metadata.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise UserError(f"patch file {path!r} has format version {version!r}, this easyedit-detox reads up to "
                        f"{FORMAT_VERSION}; upgrade easyedit-detox")
    return metadata


def _check_contents(path: str, metadata: dict, tensors: Mapping[str, torch.Tensor],
                    base: Mapping[str, torch.Tensor], edited: Mapping[str, torch.Tensor]) -> None:
    """UserError unless the tensors are exactly the pairs the metadata lists, with the digests it records."""
    listed = set(metadata["tensors"])
    stray = sorted(k for k in tensors if not k.startswith((BASE, EDITED)))
    if stray or set(base) != listed or set(edited) != listed:
        raise UserError(f"patch file {path!r} is damaged: its tensors do not match the parameters its metadata "
                        "lists; make the patch again")
    for name, recorded in metadata["tensors"].items():
        if tensor_digest(base[name]) != recorded.get("base") or tensor_digest(edited[name]) != recorded.get("edited"):
            raise UserError(f"patch file {path!r} is damaged: tensor {name} does not match its recorded digest; "
                            "make the patch again")


@torch.no_grad()
def apply_patch(model, patch: Patch):
    """Put the patch's edited values into `model` in place, if it holds the base values; returns `model`."""
    _check_model(model, patch, expected=patch.base_digests, other=patch.edited_digests, values=patch.edited,
                 verb="apply")
    _write(model, patch.names, patch.edited, undo=patch.base)
    return model


@torch.no_grad()
def revert_patch(model, patch: Patch):
    """Put the patch's base values back into `model` in place, if it holds the edited values; returns `model`."""
    _check_model(model, patch, expected=patch.edited_digests, other=patch.base_digests, values=patch.base,
                 verb="revert")
    _write(model, patch.names, patch.base, undo=patch.edited)
    return model


def _check_model(model, patch: Patch, *, expected: Mapping[str, str], other: Mapping[str, str],
                 values: Mapping[str, torch.Tensor], verb: str) -> None:
    """UserError naming the first patched parameter that `model` lacks or holds other values for."""
    if verb == "apply":
        wrong = f"patch {patch.label} was made for another base model"
        fix = "apply it to the model it was made from"
    else:
        wrong = f"patch {patch.label} cannot be reverted on this model"
        fix = "revert it on the model it was applied to"
    params = dict(model.named_parameters())
    for name in patch.names:
        param, value = params.get(name), values[name]
        if param is None:
            raise UserError(f"{wrong}: the model has no parameter {name}; {fix}")
        if param.device.type == META:
            raise UserError(f"patch {patch.label}: parameter {name} is offloaded (meta device); load the model "
                            f"without offloading to {verb} a patch")
        if param.shape != value.shape:
            raise UserError(f"{wrong}: parameter {name} has shape {tuple(param.shape)}, the patch's "
                            f"{tuple(value.shape)}; {fix}")
        if param.dtype != value.dtype:
            raise UserError(f"patch {patch.label} holds {name} in {value.dtype} but the model has it in "
                            f"{param.dtype}; load the model in {str(value.dtype).replace('torch.', '')} to {verb} it")
        digest = tensor_digest(param)
        if digest == other[name]:
            state = "already applied" if verb == "apply" else "not applied"
            raise UserError(f"patch {patch.label} is {state} to this model: parameter {name} already holds the "
                            f"values {verb} would write; nothing to {verb}")
        if digest != expected[name]:
            raise UserError(f"{wrong}: parameter {name} differs from the one the patch "
                            f"{'was made from' if verb == 'apply' else 'wrote'}; {fix}")


def _write(model, names: List[str], values: Mapping[str, torch.Tensor], undo: Mapping[str, torch.Tensor]) -> None:
    """Copy `values` into the named parameters; on failure put `undo` back into those already written."""
    params = dict(model.named_parameters())
    done = []
    try:
        for name in names:
            params[name].copy_(values[name].to(params[name].device))
            done.append(name)
    except BaseException:
        # All-or-nothing: the checks passed, so `undo` holds exactly what these parameters held.
        for name in done:
            params[name].copy_(undo[name].to(params[name].device))
        raise
