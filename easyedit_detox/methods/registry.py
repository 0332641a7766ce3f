"""Which adapter an `alg_name` names, and the apply function an evaluation runs for it.

Every method the package knows has one file here (dinm.py, ft.py, lora.py, profs.py ...), whose adapter
registers itself under its `alg_name` when this module imports it; an `alg_name` that only the
installed easyeditor's ALG_DICT knows (a method registered by someone else) gets the plain adapter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from easyedit_detox.core.errors import HyperParamsError
from .base import ADAPTERS, MethodAdapter

# Imported for their registrations (one adapter each; others.py: the rest of easyeditor's ALG_DICT).
from . import dinm, dinm_easyedit, dpo, ft, grace, lora, mend, others, profs, sft, wise  # noqa: F401,E402


@dataclass(frozen=True)
class Method:
    """A method as the evaluation runs it: its `alg_name`, the apply function and what the package knows of it."""

    name: str
    apply_fn: Callable
    adapter: MethodAdapter

    @property
    def uses_suffix(self) -> bool:
        """Whether edit prompts and post-edit inputs carry the suffix system prompt."""
        return self.adapter.uses_suffix


def adapter_for(alg_name: str, prefer: Optional[str] = None) -> MethodAdapter:
    """The adapter `alg_name` names here (DINM by the registration policy); a plain one for other ALG_DICT names."""
    from .registration import preference

    policy = preference(prefer)  # a bad EASYEDIT_DETOX_DINM is reported whatever the method
    if alg_name == "DINM" and policy == "easyedit" and dinm_easyedit.native_apply_fn() is not None:
        return ADAPTERS[dinm_easyedit.NATIVE_ALIAS]
    found = ADAPTERS.get(alg_name)
    if found is not None:
        return found
    plain = MethodAdapter()
    plain.alg_name = alg_name
    return plain


def refuse_unsupported(alg_name: str) -> None:
    """Raise HyperParamsError when `alg_name` cannot edit SafeEdit requests, saying why (nothing is imported)."""
    found = ADAPTERS.get(alg_name)
    if found is not None:
        found.refuse()


def resolve_method(alg_name: str, prefer: Optional[str] = None) -> Method:
    """The method `alg_name` names here, with its apply function (this package's, else easyeditor's ALG_DICT)."""
    adapter = adapter_for(alg_name, prefer)
    adapter.refuse()
    if alg_name not in ADAPTERS:
        from easyedit_detox.easyedit.upstream import alg_dict

        table = alg_dict()
        if alg_name not in table:
            raise HyperParamsError(f"method {alg_name!r} is not in easyeditor's ALG_DICT; available: "
                                   f"{sorted(set(table) | set(ADAPTERS))}")
    return Method(alg_name, adapter.apply_fn(prefer), adapter)


def known_alg_names() -> list:
    """Every alg_name the package has an adapter for."""
    return sorted(ADAPTERS)
