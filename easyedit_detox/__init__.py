"""easyedit-detox: DINM and the SafeEdit evaluation as a plugin for EasyEdit.

Importing this package (or any of its modules) registers DINM with easyeditor, at once when
easyeditor is imported and otherwise the moment it is, so `BaseEditor.from_hparams(
DINMHyperParams.from_hparams(path))` works as for EasyEdit's built-in methods whatever the import
order (see `methods/registration.py` for the policy next to EasyEdit's own DINM). The package
itself never imports easyeditor to register: `easyedit-detox --help` stays instant. Reading
`easyedit_detox.REGISTRATION` imports easyeditor, so it always says what happened.
"""

__version__ = "0.2.0"

# The public names, imported on first use so that `easyedit-detox --help` or `compare` never pay
# for easyeditor's import chain (seconds: timm, torchvision, ...).
_LAZY = {
    "DINMHyperParams": "dinm", "apply_dinm_to_model": "dinm", "execute_dinm": "dinm",
    "locate_toxic_layer": "dinm", "EditReport": "dinm",
    "SafetyEditor": "safety_editor", "load_hparams": "methods.hparams",
    "register": "methods.registration",
    "evaluate": "evaluation.runner",
    "apply_edits": "shipping.apply", "load_patch": "shipping.patches", "apply_patch": "shipping.patches",
    "revert_patch": "shipping.patches",
    "PromptFormat": "evaluation.formats", "load_model_and_tokenizer": "easyedit.loading",
    "model_folder": "easyedit.gguf_models",
}

#: What registering did (a `Registration`, comparable with 'added', 'replaced', 'kept', 'untouched').
#: Not set until easyeditor is imported; reading it imports easyeditor (see __getattr__).

__all__ = sorted(_LAZY) + ["REGISTRATION", "__version__"]


def __getattr__(name):
    if name == "REGISTRATION":
        from easyedit_detox.easyedit.upstream import easyeditor

        easyeditor()  # registration runs when its import finishes
        if "REGISTRATION" not in globals():
            from easyedit_detox.methods.registration import register

            register()  # easyeditor was imported before this package, and registering then failed
        return globals()["REGISTRATION"]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'easyedit_detox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


from easyedit_detox.methods.registration import register_when_easyeditor_imports as _register_when_easyeditor_imports

_register_when_easyeditor_imports()
