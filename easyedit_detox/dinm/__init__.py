"""DINM: locate the toxic layer, then tune its MLP output projection (Wang et al., ACL 2024)."""

from .dinm_main import EditReport, apply_dinm_to_model, execute_dinm, plan_edit
from .hparams import DINMHyperParams
from .locate import layer_distances, locate_toxic_layer

__all__ = ["DINMHyperParams", "apply_dinm_to_model", "execute_dinm", "plan_edit", "EditReport",
           "locate_toxic_layer", "layer_distances"]

# When importing this module is what imports easyeditor, registering waited for it to be whole (see
# bridge/registration.py); this is that moment. Otherwise it registers nothing new (idempotent).
from easyedit_detox.bridge.registration import register_when_easyeditor_imports as _register_when_easyeditor_imports  # noqa: E402

_register_when_easyeditor_imports()
