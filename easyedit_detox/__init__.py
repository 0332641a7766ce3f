"""easyedit-detox: DINM and the SafeEdit evaluation as a plugin for EasyEdit.

Importing the package registers DINM with easyeditor, so `BaseEditor.from_hparams(
DINMHyperParams.from_hparams(path))` works as for EasyEdit's built-in methods.
"""

from .bridge.easyeditor_import import ALG_DICT, easyeditor  # raises an install hint if missing
from .bridge.registration import export_names, register
from .dinm import DINMHyperParams, EditReport, apply_dinm_to_model, execute_dinm, locate_toxic_layer
from .bridge.safety_editor import SafetyEditor
from .safeedit.runner import evaluate

__version__ = "0.1.0"

REGISTRATION = register(apply_dinm_to_model, ALG_DICT)
export_names(easyeditor, DINMHyperParams=DINMHyperParams, apply_dinm_to_model=apply_dinm_to_model)

__all__ = ["DINMHyperParams", "apply_dinm_to_model", "execute_dinm", "locate_toxic_layer", "EditReport",
           "SafetyEditor", "evaluate", "REGISTRATION", "__version__"]
