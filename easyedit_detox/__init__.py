"""easyedit-detox: DINM and the SafeEdit evaluation as a plugin for EasyEdit.

`import easyedit_detox` registers DINM with easyeditor, so `BaseEditor.from_hparams(
DINMHyperParams.from_hparams(path))` works as for EasyEdit's built-in methods (see
`bridge/registration.py` for the policy next to EasyEdit's own DINM). Importing one of the
package's modules (`easyedit_detox.evaluation.metrics`, the CLI, ...) does not register and does
not import easyeditor; call `easyedit_detox.register()` to register explicitly.
"""

import sys as _sys

__version__ = "0.2.0"

# The public names, imported on first use so that `easyedit-detox --help` or `compare` never pay
# for easyeditor's import chain (seconds: timm, torchvision, ...).
_LAZY = {
    "DINMHyperParams": "dinm", "apply_dinm_to_model": "dinm", "execute_dinm": "dinm",
    "locate_toxic_layer": "dinm", "EditReport": "dinm",
    "SafetyEditor": "bridge.safety_editor", "load_hparams": "bridge.hparams",
    "register": "bridge.registration",
    "evaluate": "evaluation.runner",
    "apply_edits": "shipping.apply", "load_patch": "shipping.patches", "apply_patch": "shipping.patches",
    "revert_patch": "shipping.patches",
    "PromptFormat": "evaluation.formats", "load_model_and_tokenizer": "bridge.loading",
    "model_folder": "bridge.gguf_models",
}

#: What `register()` did (a `Registration`, comparable with 'added', 'replaced', 'kept', 'untouched'),
#: or None while nothing has registered.
REGISTRATION = None

__all__ = sorted(_LAZY) + ["REGISTRATION", "__version__"]


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'easyedit_detox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def _imported_for_a_submodule() -> bool:
    """True when Python runs this file only as the parent of `easyedit_detox.<something>` being imported.

    `import easyedit_detox.evaluation.metrics` executes this file first; the import machinery's frames
    above it name the module actually asked for (importlib's `name`, runpy's `mod_name` for `-m`).
    """
    frame = _sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if "importlib" in code.co_filename or code.co_filename.endswith("runpy.py"):
            for key in ("name", "mod_name"):
                asked = frame.f_locals.get(key)
                if isinstance(asked, str) and asked.startswith(__name__ + "."):
                    return True
        elif code.co_filename != __file__:
            return False  # the importing code itself: whatever it asked for was this package
        frame = frame.f_back
    return False


if not _imported_for_a_submodule():
    from .bridge.registration import register as _register

    _register()
