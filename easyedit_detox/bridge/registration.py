"""Adding DINM to easyeditor's ALG_DICT, the dict BaseEditor looks methods up in."""

from __future__ import annotations

import logging
import os
from typing import Callable, MutableMapping, Optional

LOG = logging.getLogger(__name__)

ALG_NAME = "DINM"
OURS_ALIAS = "DINM-detox"
NATIVE_ALIAS = "DINM-EasyEdit"
# Set to "easyedit" to keep EasyEdit's own DINM under "DINM" (ours stays reachable as "DINM-detox").
PREFERENCE_ENV = "EASYEDIT_DETOX_DINM"


def register(apply_fn: Callable, alg_dict: MutableMapping, prefer: Optional[str] = None) -> str:
    """Put `apply_fn` into `alg_dict`; returns what happened ('added', 'kept', 'replaced', 'deferred').

    EasyEdit from git already has a DINM entry. By default ours takes the "DINM" key (this package
    follows the paper where that code does not) and theirs moves to "DINM-EasyEdit"; with
    prefer="easyedit" (or EASYEDIT_DETOX_DINM=easyedit) theirs keeps "DINM". Ours is always also
    under "DINM-detox". Registering again is a no-op.
    """
    prefer = (prefer or os.environ.get(PREFERENCE_ENV) or "ours").strip().lower()
    if prefer not in ("ours", "easyedit"):
        raise ValueError(f"{PREFERENCE_ENV}={prefer!r}: use 'ours' or 'easyedit'")
    alg_dict[OURS_ALIAS] = apply_fn
    native = alg_dict.get(ALG_NAME)
    if native is None:
        alg_dict[ALG_NAME] = apply_fn
        return "added"
    if native is apply_fn:
        return "kept"
    if prefer == "easyedit":
        LOG.warning("easyeditor already has a DINM method (%s.%s); keeping it under 'DINM' as "
                    "%s=easyedit asks. easyedit-detox's DINM is registered as '%s'.",
                    getattr(native, "__module__", "?"), getattr(native, "__name__", "?"), PREFERENCE_ENV,
                    OURS_ALIAS)
        return "deferred"
    alg_dict[NATIVE_ALIAS] = native
    alg_dict[ALG_NAME] = apply_fn
    LOG.warning("easyeditor already has a DINM method (%s.%s); easyedit-detox's DINM now answers to "
                "'DINM' and EasyEdit's moved to '%s'. Set %s=easyedit before importing to keep EasyEdit's.",
                getattr(native, "__module__", "?"), getattr(native, "__name__", "?"), NATIVE_ALIAS,
                PREFERENCE_ENV)
    return "replaced"


def export_names(module, **names) -> None:
    """Make `from easyeditor import NAME` work for each of `names`, as for built-in methods."""
    for name, value in names.items():
        current = getattr(module, name, None)
        if current is not None and current is not value and getattr(current, "__module__", "").startswith("easyeditor"):
            # EasyEdit's own DINMHyperParams / apply_dinm_to_model: keep them reachable.
            setattr(module, f"EasyEdit{name}", current)
        setattr(module, name, value)
        exported = getattr(module, "__all__", None)
        if isinstance(exported, list) and name not in exported:
            exported.append(name)
