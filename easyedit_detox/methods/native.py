"""EasyEdit's own DINM as its SafetyEditor drives it (for `EASYEDIT_DETOX_DINM=easyedit` and the fidelity tests)."""

from __future__ import annotations

import types
from typing import Any, Dict, List

from easyedit_detox.core.errors import RequestError


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
