"""Editing a caller's model with any EasyEdit method, and leaving it exactly as it was afterwards.

`UndoSession.edited(request)` applies one edit inside a `with` block and undoes it when the block ends,
whatever ends it (an exception, Ctrl-C): the method's own undo where it has one (peft adapters,
GRACE/WISE callables), every structural trace put back (`ModelState`), the values of every
parameter the edit wrote copied back, and a check that each such parameter again has the digest
it had before the first edit. The evaluation does not trust the originals a method hands back
(PyPI's FT returns them only with `keep_original_weight=True`): for methods whose edited tensors
follow from their hparams (FT, MEND, EasyEdit's DINM) it copies them itself first; this package's
DINM returns its originals (tested against the digests like everything else).

`UndoSession.keep(request)` applies an edit and keeps it (sequential edits, `apply`): adapters are merged
into the weights, the other traces removed, and the originals of every parameter ever written kept
so that `restore_all()` gives the caller the vanilla model back.
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional

import torch

from easyedit_detox.core.weights import changed_since, copy_parameters, digests, stamps, write_back
from easyedit_detox.core.devices import input_device
from .device_scope import hparams_on_device, on_device
from .base import BATCH
from .registry import Method, resolve_method
from .scoped import captured_stdout
from .state import ModelState

LOG = logging.getLogger(__name__)

# Every edit starts from this random state: a LoRA adapter's initial weights and any dropout mask are the same
# from run to run (torch's own RNG starts from a random seed in each process).
EDIT_SEED = 0


class EditNotUndone(RuntimeError):
    """An edit could not be undone exactly; the message names the parameters that differ."""


@dataclass
class Edit:
    """One applied edit: the model to generate with and what changed in the caller's model."""

    model: Any  # the caller's model, or a wrapper around it (a PeftModel, GRACE's editor ...)
    written: List[str]  # the caller's parameters whose values the edit changed
    in_place: bool  # the caller's own modules compute the edited function (no wrapper, no new modules)
    info: Dict[str, Any] = field(default_factory=dict)
    originals: Dict[str, torch.Tensor] = field(default_factory=dict)  # the written parameters' values before

    def edited_tensors(self, model) -> Dict[str, torch.Tensor]:
        """Clones of the written parameters' edited values."""
        return copy_parameters(model, self.written)


def generation_model(edit: Edit, model):
    """The model that computes `edit`'s function, in eval mode: new adapter modules (peft's LoRA dropout) start
    in training mode, and greedy answers must not depend on dropout. The edit's undo restores every mode."""
    chosen = edit.model if hasattr(edit.model, "generate") else model
    chosen.eval()
    return chosen


class UndoSession:
    """Runs one EasyEdit method on one model, one request at a time."""

    def __init__(self, model, tok, hparams, method: Optional[Method] = None, prefer: Optional[str] = None,
                 vanilla_digests: Optional[Dict[str, str]] = None, progress: bool = False):
        self.model, self.tok, self.hparams = model, tok, hparams
        self.progress = progress  # a bar of optimisation steps during each edit (our DINM reports them)
        self.method = method or resolve_method(str(hparams.alg_name), prefer)
        self.device = input_device(model)
        self.call_hparams = hparams_on_device(hparams, self.device)
        self.vanilla = vanilla_digests if vanilla_digests is not None else digests(model)
        self._kept: Dict[str, torch.Tensor] = {}  # originals of everything `keep` has written
        self.memo: Dict[str, Any] = {}  # what the method's adapter keeps between edits (e.g. located layers)
        self._warned_full_copy = False

    # -- one edit, undone --------------------------------------------------------------------
    def _before_edit(self):
        """What an edit is undone from: the model's state, its parameters' stamps, our own copies."""
        return ModelState.capture(self.model, self.tok), stamps(self.model), self._copies_before()

    @contextmanager
    def edited(self, request: Dict[str, Any]) -> Iterator[Edit]:
        """The model edited with `request` inside the block; the model as it was after it, on every exit."""
        state, before, copies = self._before_edit()
        outcome = None
        try:
            outcome = self._apply(request)
            yield self._describe(outcome, before, copies)
        finally:
            self._undo(outcome, state, before, copies)

    # -- edits kept ----------------------------------------------------------------------------
    def keep(self, request: Dict[str, Any]) -> Edit:
        """Apply `request` and keep the edit in the model (adapters merged); `restore_all` undoes every kept edit."""
        return self.keep_many([request])

    def detoxify(self, requests: List[Dict[str, Any]], on_request=None) -> Edit:
        """Keep one edit made from all `requests` (the global protocol): in one call where the method's adapter says
        its apply function takes them together, else one kept edit after another (`on_request(i)` after each)."""
        if self.method.adapter.global_mode == BATCH:
            edit = self.keep_many(requests)
            if on_request is not None:
                on_request(len(requests))
            return edit
        written: List[str] = []
        seconds = 0.0
        originals: Dict[str, torch.Tensor] = {}
        for i, request in enumerate(requests, 1):
            edit = self.keep_many([request])
            seconds += edit.info["seconds"]
            written.extend(n for n in edit.written if n not in originals)
            for name in edit.written:
                originals.setdefault(name, edit.originals[name])
            if on_request is not None:
                on_request(i)
        return Edit(self.model, sorted(set(written)), True, {"seconds": round(seconds, 4)}, originals)

    def keep_many(self, requests: List[Dict[str, Any]]) -> Edit:
        """Apply one edit made from all `requests` in one call of the method, and keep it (see `keep`)."""
        state, before, copies = self._before_edit()
        outcome = None
        try:
            outcome = self._apply_many(requests)
            edited_model = outcome[0]
            adapted = _adapted_base_parameters(self.model)
            for name, param in adapted.items():  # peft merges into these through `.data`, unseen by version counters
                copies.setdefault(name, param.detach().clone())
            if hasattr(edited_model, "merge_and_unload") and edited_model is not self.model:
                edited_model.merge_and_unload()
            state.restore()
            written, added, removed = _changed(self.model, before, outcome[1])
            written = sorted(set(written) | set(adapted))
            if added or removed:
                raise EditNotUndone(f"method {self.method.name!r} changed the model's structure ({(added + removed)[:4]}) "
                                    "in a way that cannot be kept as plain weights")
            originals = _originals(written, copies, outcome[1])
            missing = [n for n in written if n not in originals]
            if missing:
                raise EditNotUndone(f"method {self.method.name!r} changed {missing[:4]} without a way to restore "
                                    "them (it returned no originals for them)")
            for name in written:
                self._kept.setdefault(name, originals[name])
            return Edit(self.model, written, True, outcome[2], originals)
        except BaseException:
            self._undo(outcome, state, before, copies)
            raise

    def adopt(self, originals: Dict[str, torch.Tensor]) -> None:
        """Take `originals` as the pre-edit values of tensors whose edits are already in the model (a resumed run)."""
        for name, tensor in originals.items():
            self._kept.setdefault(name, tensor)

    def restore_all(self) -> None:
        """Undo every kept edit (and check the digests)."""
        write_back(self.model, self._kept)
        self._verify(list(self._kept))
        self._kept.clear()

    @property
    def kept_originals(self) -> Dict[str, torch.Tensor]:
        """The original values of every parameter the kept edits changed."""
        return dict(self._kept)

    # -- the pieces ----------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def _seeded() -> Iterator[None]:
        """Inside: torch's RNGs seeded with EDIT_SEED; after: the caller's RNG states as they were."""
        cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(EDIT_SEED)
            yield

    def _apply(self, request: Dict[str, Any]):
        """Run the method on the model's device; returns (edited model, weights_copy, info)."""
        return self._apply_many([request])

    def _apply_many(self, requests: List[Dict[str, Any]]):
        """Run the method once on `requests` (one call of its apply function); returns as `_apply`."""
        adapter = self.method.adapter
        hparams = adapter.prepare_hparams(self.call_hparams, self.model, self.tok, requests[0], self.device,
                                          self.memo)
        report: Dict[str, Any] = {}
        bar = None
        if adapter.ours and self.progress:
            from easyedit_detox.core.progress import progress_bar

            bar = progress_bar(getattr(hparams, "num_steps", None), f"{self.method.name} edit", "step", leave=False)

        def on_step(step, loss):
            bar.update(1)
            if loss == loss:  # a trainer that logs no loss per step reports NaN
                bar.set_postfix_str(f"loss {loss:.4f}")
        started = time.perf_counter()
        # easyeditor print()s every step; keep stdout for results and progress bars (this thread's prints only).
        chatter = io.StringIO()
        try:
            with self._seeded(), on_device(self.device), adapter.compat(hparams, len(requests)), \
                    captured_stdout() as chatter:
                apply_fn = adapter.bind(self.method.apply_fn, self.model, self.tok, hparams)
                adapted = [adapter.adapt_request(r) for r in requests]
                extra = adapter.call_kwargs(report, on_step if bar is not None else None)
                edited_model, weights_copy = apply_fn(self.model, self.tok, adapted, hparams, copy=False,
                                                      return_orig_weights=True, keep_original_weight=True, **extra)
        finally:
            if bar is not None:
                bar.close()
            if chatter.getvalue():
                LOG.debug("%s printed:\n%s", self.method.name, chatter.getvalue()[-4000:])
        info = {"seconds": round(time.perf_counter() - started, 4)}
        info.update(adapter.edit_info(hparams, report))
        return edited_model, weights_copy, info

    def _describe(self, outcome, before, copies) -> Edit:
        edited_model, weights_copy, info = outcome
        written, added, removed = _changed(self.model, before, weights_copy)
        in_place = edited_model is self.model and not added and not removed
        return Edit(edited_model, written, in_place, info, _originals(written, copies, weights_copy))

    def _copies_before(self) -> Dict[str, torch.Tensor]:
        """Our own copies of the parameters this method is known to write, taken before it runs."""
        names = self.method.adapter.predicted_writes(self.hparams, self.model, self.memo)
        if names is None:
            if not self._warned_full_copy:
                LOG.warning("method %r: which parameters it writes is not known, so every parameter is copied to "
                            "the CPU before each edit to be able to undo it (slow for large models)", self.method.name)
                self._warned_full_copy = True
            params = dict(self.model.named_parameters())
            return {n: p.detach().to("cpu", copy=True) for n, p in params.items()}
        return copy_parameters(self.model, names)

    def _undo(self, outcome, state: ModelState, before, copies) -> None:
        weights_copy = outcome[1] if outcome else None
        problems = []
        if callable(weights_copy):  # GRACE, WISE, KN: the method's own undo
            try:
                with torch.no_grad():
                    weights_copy()
            except Exception as exc:  # keep undoing the rest; reported below
                problems.append(f"its own undo failed ({type(exc).__name__}: {exc})")
        state.restore()
        written, added, removed = _changed(self.model, before, weights_copy)
        if added or removed:
            problems.append(f"parameters appeared or vanished: {(added + removed)[:4]}")
        originals = _originals(written, copies, weights_copy)
        write_back(self.model, originals)
        missing = [n for n in written if n not in originals]
        if missing:
            problems.append(f"it changed {missing[:4]} without a way to restore them")
        if problems:
            raise EditNotUndone(f"method {self.method.name!r} did not leave the model as it was: "
                                f"{'; '.join(problems)}")
        self._verify(written + [n for n in copies if n not in written])

    def verify_all(self) -> None:
        """Raise EditNotUndone unless every parameter has its vanilla digest (also catches writes through `.data`)."""
        self._verify(list(self.vanilla))

    def _verify(self, names: List[str]) -> None:
        """Raise EditNotUndone unless each named parameter has its vanilla digest again."""
        now = digests(self.model, names)
        wrong = [n for n, d in now.items() if self.vanilla.get(n) not in (None, d)]
        if wrong:
            raise EditNotUndone(f"method {self.method.name!r}: after the edit was undone, {wrong[:4]} still differ from "
                                "the model before the edit; the evaluation stops so later cases are not contaminated")


def _changed(model, before, weights_copy):
    """(written, added, removed) since `before`: the version counters' writes plus every tensor the method says it
    wrote (its originals): a trainer's optimizer may write through `.data`, which no counter sees."""
    written, added, removed = changed_since(model, before)
    if isinstance(weights_copy, dict):
        params = dict(model.named_parameters())
        written = sorted(set(written) | {n for n in weights_copy if n in params})
    return written, added, removed


def _originals(written: List[str], copies: Dict[str, torch.Tensor], weights_copy) -> Dict[str, torch.Tensor]:
    """The pre-edit value of each written parameter: our own copy where we took one, else the method's."""
    found = {n: copies[n] for n in written if n in copies}
    if isinstance(weights_copy, dict):
        found.update({n: weights_copy[n] for n in written if n not in found and n in weights_copy})
    return found


def _adapted_base_parameters(model) -> Dict[str, torch.nn.Parameter]:
    """The base weights under peft adapter layers, by the names they have in the unwrapped model."""
    try:
        from peft.tuners.tuners_utils import BaseTunerLayer
    except ImportError:
        return {}
    found = {}
    for module_name, module in model.named_modules():
        if isinstance(module, BaseTunerLayer):
            for param_name, param in module.get_base_layer().named_parameters(recurse=False):
                found[f"{module_name}.{param_name}"] = param
    return found
