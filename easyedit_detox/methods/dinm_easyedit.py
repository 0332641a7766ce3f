"""EasyEdit's own DINM, as its SafetyEditor drives it (`alg_name: DINM-EasyEdit`, or DINM with EASYEDIT_DETOX_DINM=easyedit).

Its apply function edits `hparams.layers`; when the YAML leaves them empty its SafetyEditor locates the
toxic layer for the first request and reuses it for every later one, which `prepare_hparams` does with
SafetyEditor's own code. EasyEdit from git only: PyPI's 0.0.1.dev0 has no DINM.
"""

from __future__ import annotations

import copy
import types
from typing import Any, Callable, Dict, List, Optional

from easyedit_detox.core.errors import HyperParamsError, RequestError
from .base import BATCH, MethodAdapter, module_names, register_adapter

NATIVE_ALIAS = "DINM-EasyEdit"
MISSING = ("alg_name 'DINM-EasyEdit' names EasyEdit's own DINM, which the installed easyeditor does not have "
           "(PyPI's 0.0.1.dev0); install EasyEdit from git")


def native_apply_fn() -> Optional[Callable]:
    """EasyEdit's own apply_dinm_to_model, wherever registration left it (None on PyPI's easyeditor)."""
    from easyedit_detox.dinm import apply_dinm_to_model
    from easyedit_detox.easyedit.upstream import alg_dict

    table = alg_dict()
    found = table.get(NATIVE_ALIAS) or table.get("DINM")
    if found is not None and found is not apply_dinm_to_model:
        return found
    try:
        from easyeditor.models.dinm import apply_dinm_to_model as native
    except ImportError:
        return None
    return native


def native_hparams_class() -> Optional[type]:
    """EasyEdit's own DINMHyperParams (None on PyPI's easyeditor)."""
    from easyedit_detox.easyedit.upstream import easyeditor

    cls = getattr(easyeditor(), "EasyEditDINMHyperParams", None)
    if cls is not None:
        return cls
    try:
        from easyeditor.models.dinm import DINMHyperParams
    except ImportError:
        return None
    return DINMHyperParams


def locate_like_easyedit(model, tok, request: Dict[str, Any], device) -> List[int]:
    """The toxic layer EasyEdit-git's `SafetyEditor._locate_toxic_layer` finds for `request` (its own code runs)."""
    if not request.get("ground_truth"):
        raise RequestError("EasyEdit's DINM locates the toxic layer from the unsafe response: the request has no "
                           "'ground_truth'; pass it, or set hparams layers: [N]")
    from easyedit_detox.easyedit.upstream import easyeditor

    safety_editor = getattr(easyeditor(), "SafetyEditor", None)
    locate = getattr(safety_editor, "_locate_toxic_layer", None)
    if locate is None:
        raise RequestError("the installed easyeditor has no SafetyEditor._locate_toxic_layer (EasyEdit's own DINM "
                           "needs EasyEdit from git); use alg_name DINM-detox or set hparams layers: [N]")
    # Its SafetyEditor loads models with output_hidden_states=True and reads only hparams.device.
    shim = types.SimpleNamespace(hparams=types.SimpleNamespace(device=str(device)))
    config = model.config
    saved = config.output_hidden_states
    config.output_hidden_states = True
    try:
        return list(locate(shim, model, tok, [request]))
    finally:
        config.output_hidden_states = saved


@register_adapter
class EasyEditDINMAdapter(MethodAdapter):
    """EasyEdit-git's apply_dinm_to_model with its SafetyEditor's layer location."""

    alg_name = NATIVE_ALIAS
    uses_suffix = True
    global_mode = BATCH

    def hparams_class(self, prefer: Optional[str] = None) -> type:
        cls = native_hparams_class()
        if cls is None:
            raise HyperParamsError(MISSING)
        return cls

    def apply_fn(self, prefer: Optional[str] = None) -> Callable:
        native = native_apply_fn()
        if native is None:
            raise HyperParamsError(MISSING)
        return native

    def prepare_hparams(self, hparams, model, tok, request, device, memo):
        if list(getattr(hparams, "layers", []) or []):
            return hparams
        if "layers" not in memo:
            memo["layers"] = locate_like_easyedit(model, tok, request, device)
        clone = copy.copy(hparams)
        clone.layers = list(memo["layers"])
        return clone

    def edit_info(self, hparams, report):
        return {"layers": list(hparams.layers)}

    def predicted_writes(self, hparams, model, memo):
        layers = list(getattr(hparams, "layers", []) or []) or list(memo.get("layers") or [])
        if not layers:
            return None  # located at the first edit: unknown before it
        return module_names(model, [hparams.rewrite_module_tmp], layers)
