"""Which EasyEdit method an `alg_name` means here, and whether it can edit a SafeEdit request at all.

A SafeEdit edit request carries a prompt (the attack), `target_new` (the safe response),
`ground_truth` (the unsafe response) and a general-knowledge constraint. Methods that need more
are refused before any model is loaded, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from easyedit_detox.core.errors import HyperParamsError

# Locate-then-edit methods that find the key vector at the last token of `request["subject"]` inside
# the prompt: a SafeEdit request has no subject (the "knowledge" is a whole unsafe behaviour).
SUBJECT_METHODS = ("ROME", "MEMIT", "MEMIT-FE", "R-ROME", "EMMET", "EAMET", "AlphaEdit", "PMET", "SPHERE", "CORE")
REFUSED = {
    **{name: "it edits the key vector of `request['subject']`, and a SafeEdit request has no subject "
             "(the edit is an unsafe behaviour, not a subject-relation-object fact)" for name in SUBJECT_METHODS},
    "FT-Api": "it fine-tunes a remote OpenAI model, not the loaded one",
    "DeepEdit-Api": "it edits through a remote API, not the loaded model",
    "IKE": "it needs `train_ds` (a training set of in-context demonstrations), which the SafeEdit evaluation "
           "does not provide",
    "QLoRA": "it loads the model 4-bit quantised through bitsandbytes on a CUDA device itself",
}
# Our DINM and EasyEdit's own edit and are evaluated with the suffix system prompt (SafeEdit's protocol).
SUFFIX_METHODS = ("DINM", "DINM-detox", "DINM-EasyEdit")


@dataclass(frozen=True)
class Method:
    """An EasyEdit method as the evaluation runs it."""

    name: str
    apply_fn: Callable
    is_detox_dinm: bool  # this package's DINM
    is_easyedit_dinm: bool  # EasyEdit's own DINM, which edits `hparams.layers` (located by its SafetyEditor)

    @property
    def uses_suffix(self) -> bool:
        """Whether edit prompts and post-edit inputs carry the suffix system prompt."""
        return self.name in SUFFIX_METHODS


def refuse_unsupported(alg_name: str) -> None:
    """Raise HyperParamsError when `alg_name` cannot edit SafeEdit requests, saying why."""
    reason = REFUSED.get(alg_name)
    if reason is not None:
        raise HyperParamsError(f"method {alg_name!r} cannot edit SafeEdit requests: {reason}; use DINM, FT, "
                               "LoRA, MEND (or GRACE, WISE with EasyEdit from git)")


def resolve_method(alg_name: str, prefer: Optional[str] = None) -> Method:
    """The apply function `alg_name` names here: this package's DINM by policy, else easyeditor's ALG_DICT."""
    from .registration import NATIVE_ALIAS, OURS_ALIAS, preference
    from easyedit_detox.dinm import apply_dinm_to_model

    refuse_unsupported(alg_name)
    if alg_name == OURS_ALIAS:
        return Method(alg_name, apply_dinm_to_model, is_detox_dinm=True, is_easyedit_dinm=False)
    from easyedit_detox.easyedit.upstream import alg_dict

    table = alg_dict()
    if alg_name == "DINM":
        native = _native_dinm(table)
        if preference(prefer) == "easyedit" and native is not None:
            return Method(alg_name, native, is_detox_dinm=False, is_easyedit_dinm=True)
        return Method(alg_name, apply_dinm_to_model, is_detox_dinm=True, is_easyedit_dinm=False)
    if alg_name == NATIVE_ALIAS:
        native = _native_dinm(table)
        if native is None:
            raise HyperParamsError("alg_name 'DINM-EasyEdit' names EasyEdit's own DINM, which the installed "
                                   "easyeditor does not have (PyPI's 0.0.1.dev0); install EasyEdit from git")
        return Method(alg_name, native, is_detox_dinm=False, is_easyedit_dinm=True)
    fn = table.get(alg_name)
    if fn is None:
        raise HyperParamsError(f"method {alg_name!r} is not in easyeditor's ALG_DICT; available: "
                               f"{sorted(set(table) | {OURS_ALIAS})}")
    return Method(alg_name, fn, is_detox_dinm=False, is_easyedit_dinm=False)


def _native_dinm(table) -> Optional[Callable]:
    """EasyEdit's own apply_dinm_to_model, wherever registration left it (None on PyPI's easyeditor)."""
    from .registration import NATIVE_ALIAS
    from easyedit_detox.dinm import apply_dinm_to_model

    found = table.get(NATIVE_ALIAS) or table.get("DINM")
    if found is not None and found is not apply_dinm_to_model:
        return found
    try:
        from easyeditor.models.dinm import apply_dinm_to_model as native
    except ImportError:
        return None
    return native


def adapt_request(method_name: str, request: dict) -> dict:
    """The SafeEdit request in the form `method_name` reads (WISE also needs `loc_prompt`)."""
    if method_name != "WISE" or "loc_prompt" in request:
        return request
    # WISE trains against an unrelated text to keep: SafeEdit's general-knowledge constraint, as prompt + answer.
    constraint = (request.get("locality") or {}).get("general knowledge constraint") or {}
    return {**request, "loc_prompt": f"{constraint.get('prompt', '')} {constraint.get('ground_truth', '')}".strip()}
