"""Adding DINM to easyeditor: its ALG_DICT (what BaseEditor looks methods up in) and `from easyeditor import ...`.

DINM is registered as soon as both this package (any of its modules) and easyeditor are imported, in
either order: importing the package registers at once when easyeditor is already imported, and
otherwise the moment easyeditor's own import finishes (`register_when_easyeditor_imports`). So the
package never imports easyeditor (seconds) just to register, `--help` stays instant, and no import
order leaves DINM out. Policies:

- default ("ours"): this package's DINM answers to "DINM" and "DINM-detox"; where easyeditor already
  has a DINM (EasyEdit from git), theirs moves to "DINM-EasyEdit" and `easyeditor.DINMHyperParams` /
  `easyeditor.apply_dinm_to_model` to `EasyEditDINMHyperParams` / `EasyEditapply_dinm_to_model`, and
  a warning names each replacement and how to keep theirs.
- `EASYEDIT_DETOX_DINM=easyedit` (or `register(prefer="easyedit")`): easyeditor is left exactly as it
  is. This package's own entry points (SafetyEditor, `evaluate`, the CLI) then run EasyEdit's DINM
  for `alg_name: DINM`, and this package's for `alg_name: DINM-detox`.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
import threading
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
        from easyedit_detox.core.errors import UserError

        raise UserError(f"{PREFERENCE_ENV}={value!r}: use 'ours' (the default) or 'easyedit'")
    return value


def register_into(alg_dict: MutableMapping, module, apply_fn: Callable, hparams_cls: type,
                  prefer: Optional[str] = None) -> Registration:
    """Register `apply_fn`/`hparams_cls` as DINM in `alg_dict` and as `module`'s exports, by policy."""
    return register_methods_into(alg_dict, module, [OurMethod(ALG_NAME, apply_fn, hparams_cls, EXPORTS,
                                                              aliases=(OURS_ALIAS,))], prefer)


@dataclass(frozen=True)
class OurMethod:
    """A method this package implements, as easyeditor sees it: its ALG_DICT name(s) and exported names."""

    alg_name: str
    apply_fn: Callable
    hparams_cls: type
    exports: tuple  # (hparams class name, apply function name) in easyeditor's namespace
    aliases: tuple = ()


def register_methods_into(alg_dict: MutableMapping, module, methods: List[OurMethod],
                          prefer: Optional[str] = None) -> Registration:
    """Register each of `methods` in `alg_dict` and as `module`'s exports, by policy (see the module docstring)."""
    policy = preference(prefer)
    if policy == "easyedit":
        LOG.info("%s=easyedit: easyeditor is left untouched; easyedit-detox's methods are reachable through "
                 "easyedit_detox's own entry points (its DINM as alg_name '%s')", PREFERENCE_ENV, OURS_ALIAS)
        return Registration("untouched", policy)
    replaced: List[str] = []
    added = False
    for method in methods:
        name = method.alg_name
        theirs = alg_dict.get(name)
        if theirs is method.apply_fn:
            continue
        added = True
        if theirs is not None:
            alg_dict[f"{name}-EasyEdit"] = theirs
            replaced.append(f"ALG_DICT['{name}'] (now ALG_DICT['{name}-EasyEdit'])")
        for key in (name, *method.aliases):
            alg_dict[key] = method.apply_fn
        values = dict(zip(method.exports, (method.hparams_cls, method.apply_fn)))
        for export, value in values.items():
            current = getattr(module, export, None)
            if current is not None and current is not value:
                setattr(module, NATIVE_EXPORT_PREFIX + export, current)
                replaced.append(f"easyeditor.{export} (now easyeditor.{NATIVE_EXPORT_PREFIX}{export})")
            setattr(module, export, value)
            exported = getattr(module, "__all__", None)
            if isinstance(exported, list) and export not in exported:
                exported.append(export)
    if replaced:
        LOG.warning("easyedit-detox replaced EasyEdit's own methods of the same name: %s. Its DINM follows the "
                    "paper where EasyEdit's code does not, and its DPO trains with TRL's DPOTrainer (see the "
                    "README). To keep EasyEdit's, set %s=easyedit before importing easyedit_detox.",
                    "; ".join(replaced), PREFERENCE_ENV)
        return Registration("replaced", policy, replaced)
    return Registration("added" if added else "kept", policy)


def our_methods() -> List[OurMethod]:
    """Every method this package implements, as it registers them with easyeditor."""
    from easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model
    from .dpo import DPOHyperParams, apply_dpo_to_model
    from .profs import ProFSHyperParams, apply_profs_to_model
    from .sft import SFTHyperParams, apply_sft_to_model

    return [
        OurMethod(ALG_NAME, apply_dinm_to_model, DINMHyperParams, EXPORTS, aliases=(OURS_ALIAS,)),
        OurMethod("ProFS", apply_profs_to_model, ProFSHyperParams, ("ProFSHyperParams", "apply_profs_to_model")),
        OurMethod("SFT", apply_sft_to_model, SFTHyperParams, ("SFTHyperParams", "apply_sft_to_model")),
        OurMethod("DPO", apply_dpo_to_model, DPOHyperParams, ("DPOHyperParams", "apply_dpo_to_model")),
    ]


# Our methods that take many requests in one call: easyeditor's BatchEditor lets `BaseEditor.batch_edit` run them.
BATCHABLE = ("ProFS", "SFT", "DPO")


def allow_batch_edit(batch_editor) -> None:
    """Make easyeditor's `BatchEditor.is_batchable_method` accept BATCHABLE too (idempotent)."""
    current = batch_editor.__dict__.get("is_batchable_method")
    check = getattr(current, "__func__", current)
    if getattr(check, "easyedit_detox", False):
        return

    def is_batchable_method(alg_name: str):
        return alg_name in BATCHABLE or check(alg_name)

    is_batchable_method.easyedit_detox = True
    batch_editor.is_batchable_method = staticmethod(is_batchable_method)


def register(prefer: Optional[str] = None) -> Registration:
    """Register this package's methods with the installed easyeditor (idempotent); returns what happened."""
    import easyedit_detox

    from easyedit_detox.dinm.hparams import join_easyedit_base
    from easyedit_detox.easyedit.upstream import alg_dict, easyeditor, hyperparams_base

    methods = our_methods()
    for method in methods:
        join_easyedit_base(method.hparams_cls, hyperparams_base())
    result = register_methods_into(alg_dict(), easyeditor(), methods, prefer)
    if result.status != "untouched":
        from easyeditor.editors.batch_editor import BatchEditor

        allow_batch_edit(BatchEditor)
    first = vars(easyedit_detox).get("REGISTRATION")  # not the attribute: reading that would register
    if first is None or result.status != "kept":
        easyedit_detox.REGISTRATION = result
    return easyedit_detox.REGISTRATION


class _AfterEasyEditorImport(importlib.abc.MetaPathFinder):
    """Finds `easyeditor` with the other finders and has its loader register DINM once the package has run."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "easyeditor":
            return None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        run_module = getattr(loader, "exec_module", None)
        if run_module is None:
            return spec

        def exec_module(module):
            run_module(module)
            _stop_waiting()
            _register_quietly()

        loader.exec_module = exec_module  # this spec's own loader object: no other module is affected
        return spec


_WAITER: Optional[_AfterEasyEditorImport] = None
_LOCK = threading.Lock()


def _stop_waiting() -> None:
    global _WAITER
    with _LOCK:
        if _WAITER is not None and _WAITER in sys.meta_path:
            sys.meta_path.remove(_WAITER)
        _WAITER = None


def _register_quietly() -> None:
    """register(), with a failure logged instead of raised: it must never break the host's `import easyeditor`."""
    try:
        register()
    except Exception as exc:  # e.g. a bad EASYEDIT_DETOX_DINM value, or an easyeditor that cannot import
        LOG.warning("easyedit-detox could not register DINM with easyeditor: %s", exc)


def register_when_easyeditor_imports() -> None:
    """Register DINM now if easyeditor is imported, else as soon as it is (idempotent, imports nothing heavy)."""
    global _WAITER
    module = sys.modules.get("easyeditor")
    if module is not None:
        spec = getattr(module, "__spec__", None)
        if not getattr(spec, "_initializing", False):
            _register_quietly()
        return  # mid-import: the waiter already installed registers when it finishes
    with _LOCK:
        if _WAITER is None:
            _WAITER = _AfterEasyEditorImport()
            sys.meta_path.insert(0, _WAITER)
