"""What the package knows about one editing method, as one object: the base every `methods/<name>.py` fills in.

An adapter answers, for its `alg_name`: which hparams class loads its YAML, whether it can edit a
SafeEdit request (and why not), whether its edits and post-edit inputs carry the suffix system prompt,
how a SafeEdit request is adapted for it, which parameters it writes (so they can be copied before it
runs), which library shims it needs while it runs, how it runs under the global protocol (all training
records in one call, or one after another) and what it reports. The undo engine (`session.py`) asks
the adapter and names no method; `registry.py` maps `alg_name` to adapters.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Dict, List, Optional

from easyedit_detox.core.errors import HyperParamsError

# alg_name -> adapter; filled by `register_adapter` as the adapter modules are imported (registry.py imports them).
ADAPTERS: Dict[str, "MethodAdapter"] = {}

# How a method takes many requests under the global protocol.
BATCH = "batch"  # one call of its apply function with every request (its own batching)
ONE_BY_ONE = "one-by-one"  # one call per request, each kept before the next (EasyEdit's sequential editing)


def register_adapter(cls: type) -> type:
    """Class decorator: register an instance of `cls` under its `alg_name` and `aliases`."""
    adapter = cls()
    for name in (adapter.alg_name, *adapter.aliases):
        if name in ADAPTERS and type(ADAPTERS[name]) is not cls:
            raise RuntimeError(f"two adapters claim alg_name {name!r}: {type(ADAPTERS[name]).__name__} and "
                               f"{cls.__name__}")
        ADAPTERS[name] = adapter
    return cls


class MethodAdapter:
    """An easyeditor method that edits a SafeEdit request as it is; subclasses say what differs."""

    alg_name: str = ""
    aliases: tuple = ()
    # The name of its hparams class in `easyeditor` (PyPI's 0.0.1.dev0 and EasyEdit from git).
    hparams_class_name: Optional[str] = None
    # Why it cannot edit a SafeEdit request (None: it can).
    refused: Optional[str] = None
    # Its edit prompts and post-edit inputs carry the suffix system prompt (SafeEdit's protocol for DINM).
    uses_suffix: bool = False
    # It hands back the original values of everything it writes, so none need copying before it runs.
    returns_originals: bool = False
    # Its edits live in new modules (adapters, wrappers) and leave the caller's parameters alone.
    writes_no_parameters: bool = False
    # Under the global protocol: BATCH or ONE_BY_ONE; `global_refused` says why it cannot run there at all.
    global_mode: str = ONE_BY_ONE
    global_refused: Optional[str] = None
    # This package implements it (its apply function takes `report=` and `on_step=`).
    ours: bool = False

    # -- what runs -----------------------------------------------------------------------------
    def hparams_class(self, prefer: Optional[str] = None) -> type:
        """The class that loads this method's YAML (easyeditor's own, by `hparams_class_name`)."""
        from easyedit_detox.easyedit.upstream import easyeditor

        module = easyeditor()
        cls = getattr(module, self.hparams_class_name, None) if self.hparams_class_name else None
        if cls is None:
            known = sorted(name for name, a in ADAPTERS.items()
                           if a.ours or getattr(module, a.hparams_class_name or "", None) is not None)
            raise HyperParamsError(f"no hyperparameter class for alg_name {self.alg_name!r} in the installed "
                                   f"easyeditor; known: {known}")
        return cls

    def apply_fn(self, prefer: Optional[str] = None) -> Callable:
        """The apply function that edits (easyeditor's ALG_DICT entry)."""
        from easyedit_detox.easyedit.upstream import alg_dict

        fn = alg_dict().get(self.alg_name)
        if fn is None:
            raise HyperParamsError(f"method {self.alg_name!r} is not in the installed easyeditor's ALG_DICT; "
                                   f"available: {sorted(alg_dict())}")
        return fn

    def bind(self, fn: Callable, model, tok, hparams) -> Callable:
        """`fn` ready for one edit of `model` (stateful executors get a fresh one: see mend.py)."""
        return fn

    # -- around each call ----------------------------------------------------------------------
    def adapt_request(self, request: Dict[str, Any]) -> Dict[str, Any]:
        """The SafeEdit request in the form this method reads."""
        return request

    def compat(self, hparams, n_requests: int) -> ContextManager:
        """Library shims the installed easyeditor needs for this method to compute what it means to."""
        return contextlib.nullcontext()

    def prepare_hparams(self, hparams, model, tok, request: Dict[str, Any], device, memo: Dict[str, Any]):
        """The hparams one edit runs with (`memo` persists for the session: e.g. layers located once)."""
        return hparams

    def call_kwargs(self, report: Dict[str, Any], on_step: Optional[Callable]) -> Dict[str, Any]:
        """Extra keyword arguments for the apply function (ours take `report` and `on_step`)."""
        return {"report": report, **({"on_step": on_step} if on_step is not None else {})} if self.ours else {}

    def edit_info(self, hparams, report: Dict[str, Any]) -> Dict[str, Any]:
        """What an edit reports beyond its wall time (results' `edit` field)."""
        return {k: report[k] for k in ("layers", "losses", "stopped_early", "steps") if k in report}

    def predicted_writes(self, hparams, model, memo: Dict[str, Any]) -> Optional[List[str]]:
        """Names of the parameters an edit will write, known from its hparams; None when unknown."""
        if self.returns_originals or self.writes_no_parameters:
            return []
        return None

    def refuse(self) -> None:
        """Raise HyperParamsError when this method cannot edit SafeEdit requests, saying why."""
        if self.refused is not None:
            raise HyperParamsError(f"method {self.alg_name!r} cannot edit SafeEdit requests: {self.refused}; use "
                                   "DINM, ProFS, SFT, DPO, FT, LoRA, MEND (or GRACE, WISE with EasyEdit from git)")

    def refuse_global(self) -> None:
        """Raise HyperParamsError when this method cannot detoxify once from a training file, saying why."""
        self.refuse()
        if self.global_refused is not None:
            raise HyperParamsError(f"method {self.alg_name!r} cannot run the global protocol (--train): "
                                   f"{self.global_refused}; evaluate it per case (without --train)")


def module_names(model, templates: List[str], layers) -> List[str]:
    """The model's parameter names containing one of `templates` filled with `layers` (easyeditor's `in` matching)."""
    wanted = [t.format(layer) for t in templates for layer in layers]
    return [n for n, _ in model.named_parameters() if any(w in n for w in wanted)]
