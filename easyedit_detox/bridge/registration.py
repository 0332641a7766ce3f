"""Adding DINM to easyeditor: its ALG_DICT (what BaseEditor looks methods up in) and `from easyeditor import ...`.

`import easyedit_detox` calls `register()` (importing one of its submodules does not). Policies:

- default ("ours"): this package's DINM answers to "DINM" and "DINM-detox"; where easyeditor already
  has a DINM (EasyEdit from git), theirs moves to "DINM-EasyEdit" and `easyeditor.DINMHyperParams` /
  `easyeditor.apply_dinm_to_model` to `EasyEditDINMHyperParams` / `EasyEditapply_dinm_to_model`, and
  a warning names each replacement and how to keep theirs.
- `EASYEDIT_DETOX_DINM=easyedit` (or `register(prefer="easyedit")`): easyeditor is left exactly as it
  is. This package's own entry points (SafetyEditor, `evaluate`, the CLI) then run EasyEdit's DINM
  for `alg_name: DINM`, and this package's for `alg_name: DINM-detox`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Callable, List, MutableMapping, Optional

LOG = logging.getLogger(__name__)

ALG_NAME = "DINM"
OURS_ALIAS = "DINM-detox"
NATIVE_ALIAS = "DINM-EasyEdit"
PREFERENCE_ENV = "EASYEDIT_DETOX_DINM"
EXPORTS = ("DINMHyperParams", "apply_dinm_to_model")
NATIVE_EXPORT_PREFIX = "EasyEdit"


@dataclass
class Registration:
    """What registering did: 'added', 'replaced', 'kept' or 'untouched', and the names it replaced."""

    status: str
    preference: str
    replaced: List[str] = field(default_factory=list)

    def __str__(self) -> str:
        return self.status

    def __eq__(self, other) -> bool:  # compares with a status string, as in `REGISTRATION == "added"`
        if isinstance(other, str):
            return self.status == other
        return isinstance(other, Registration) and (self.status, self.preference, self.replaced) == (
            other.status, other.preference, other.replaced)


def preference(prefer: Optional[str] = None) -> str:
    """'ours' or 'easyedit', from `prefer` or the EASYEDIT_DETOX_DINM environment variable."""
    value = (prefer or os.environ.get(PREFERENCE_ENV) or "ours").strip().lower()
    if value not in ("ours", "easyedit"):
        from ..errors import UserError

        raise UserError(f"{PREFERENCE_ENV}={value!r}: use 'ours' (the default) or 'easyedit'")
    return value


def register_into(alg_dict: MutableMapping, module, apply_fn: Callable, hparams_cls: type,
                  prefer: Optional[str] = None) -> Registration:
    """Register `apply_fn`/`hparams_cls` as DINM in `alg_dict` and as `module`'s exports, by policy."""
    policy = preference(prefer)
    if policy == "easyedit":
        LOG.info("%s=easyedit: easyeditor is left untouched; easyedit-detox's DINM is reachable as "
                 "alg_name '%s' through easyedit_detox's own entry points", PREFERENCE_ENV, OURS_ALIAS)
        return Registration("untouched", policy)
    native = alg_dict.get(ALG_NAME)
    if native is apply_fn:
        return Registration("kept", policy)
    replaced: List[str] = []
    if native is not None:
        alg_dict[NATIVE_ALIAS] = native
        replaced.append(f"ALG_DICT['{ALG_NAME}'] (now ALG_DICT['{NATIVE_ALIAS}'])")
    alg_dict[ALG_NAME] = apply_fn
    alg_dict[OURS_ALIAS] = apply_fn
    values = {"DINMHyperParams": hparams_cls, "apply_dinm_to_model": apply_fn}
    for name in EXPORTS:
        current = getattr(module, name, None)
        if current is not None and current is not values[name]:
            setattr(module, NATIVE_EXPORT_PREFIX + name, current)
            replaced.append(f"easyeditor.{name} (now easyeditor.{NATIVE_EXPORT_PREFIX}{name})")
        setattr(module, name, values[name])
        exported = getattr(module, "__all__", None)
        if isinstance(exported, list) and name not in exported:
            exported.append(name)
    if replaced:
        LOG.warning("easyedit-detox replaced EasyEdit's DINM: %s. Its DINM follows the paper where EasyEdit's "
                    "code does not (see the README). To keep EasyEdit's, set %s=easyedit before importing "
                    "easyedit_detox.", "; ".join(replaced), PREFERENCE_ENV)
        return Registration("replaced", policy, replaced)
    return Registration("added", policy)


def register(prefer: Optional[str] = None) -> Registration:
    """Register this package's DINM with the installed easyeditor (idempotent); returns what happened."""
    import easyedit_detox

    from ..dinm import DINMHyperParams, apply_dinm_to_model
    from ..upstream import alg_dict, easyeditor

    result = register_into(alg_dict(), easyeditor(), apply_dinm_to_model, DINMHyperParams, prefer)
    if easyedit_detox.REGISTRATION is None or result.status != "kept":
        easyedit_detox.REGISTRATION = result
    return easyedit_detox.REGISTRATION
