"""`SafetyEditor`: EasyEdit-git's safety editor interface, on CPU or GPU, for any ALG_DICT method.

A script written for EasyEdit's `SafetyEditor` works by changing its import:
`metrics, edited_model, weights_copy = editor.edit(editing_method=..., prompts=...,
prompts_with_systemPrompt=..., target_new=..., ground_truth=..., locality_inputs=...,
locality_inputs_with_systemPrompt=..., general_prompt=..., general_prompt_with_systemPrompt=...,
keep_original_weight=True)`; `metrics[i]["pre"|"post"]` maps DS and the four DG keys to responses.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Dict, List, Optional, Sequence, Union

from ..errors import UserError
from ..evaluation.dataset import METRIC_KEYS
from ..evaluation.generation import GenerationSettings, generate_responses
from ..upstream import alg_dict
from .loading import load_model_and_tokenizer
from ..methods.restore import restore_weights

from easyeditor import BaseEditor  # noqa: E402  (after the guarded import above)

LOG = logging.getLogger(__name__)

CONSTRAINT = "general knowledge constraint"


def _as_list(value, n: int, name: str) -> List[Any]:
    if value is None:
        return [None] * n
    if isinstance(value, str):
        value = [value]
    value = list(value)
    if len(value) != n:
        raise UserError(f"{name} has {len(value)} item(s) but prompts has {n}; give one per prompt")
    return value


def _locality_for(inputs: Optional[Dict[str, Dict[str, Any]]], i: int, n: int) -> Dict[str, Dict[str, str]]:
    out: Dict[str, Dict[str, str]] = {}
    for key, pair in (inputs or {}).items():
        prompts = _as_list(pair.get("prompt"), n, f"locality_inputs[{key!r}]['prompt']")
        truths = _as_list(pair.get("ground_truth"), n, f"locality_inputs[{key!r}]['ground_truth']")
        out[key] = {"prompt": prompts[i], "ground_truth": truths[i]}
    return out


class SafetyEditor(BaseEditor):
    """Edit with any EasyEdit method and generate the SafeEdit responses before and after each edit."""

    @classmethod
    def from_hparams(cls, hparams, model=None, tok=None, dtype: Optional[str] = None) -> "SafetyEditor":
        """Build from hparams; loads the model by its `model_class`/`tokenizer_class` unless one is given."""
        return cls(hparams, model=model, tok=tok, dtype=dtype)

    def __init__(self, hparams, model=None, tok=None, dtype: Optional[str] = None):
        # BaseEditor.__init__ is not called: PyPI's hard-codes `model.to(f"cuda:{device}")` and
        # picks model classes from substrings of the name.
        ALG_DICT = alg_dict()
        if hparams.alg_name not in ALG_DICT:
            raise UserError(f"method {hparams.alg_name!r} is not in easyeditor's ALG_DICT; available: {sorted(ALG_DICT)}")
        self.hparams = hparams
        self.alg_name = hparams.alg_name
        self.apply_algo = ALG_DICT[hparams.alg_name]
        if model is None and isinstance(hparams.model_name, tuple):
            model, tok = hparams.model_name
        if model is None:
            model, tok = load_model_and_tokenizer(hparams, dtype=dtype)
        if tok is None:
            raise UserError("SafetyEditor got a model without its tokenizer; pass tok=... as well")
        self.model, self.tok = model, tok
        self.model_name = hparams.model_name if isinstance(hparams.model_name, str) else type(model).__name__
        self.generation = GenerationSettings(max_length=hparams.max_length,
                                             max_output_length=hparams.max_output_length,
                                             batch_size=8)

    def _responses(self, model, inputs: Sequence[str]) -> Dict[str, str]:
        gens = generate_responses(model, self.tok, list(inputs), self.generation)
        return {key: g.text for key, g in zip(METRIC_KEYS, gens)}

    def edit(self, editing_method: str, prompts: Union[str, List[str]], prompts_with_systemPrompt: Union[str, List[str]],
             target_new: Union[str, List[str]], ground_truth: Optional[Union[str, List[str]]] = None,
             locality_inputs: Optional[Dict] = None, locality_inputs_with_systemPrompt: Optional[Dict] = None,
             general_prompt: Optional[List[List[str]]] = None,
             general_prompt_with_systemPrompt: Optional[List[List[str]]] = None,
             keep_original_weight: bool = False, verbose: bool = True, **kwargs):
        """Edit each prompt and return (all_metrics, edited_model, weights_copy), as EasyEdit's SafetyEditor."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        n = len(prompts)
        with_system = _as_list(prompts_with_systemPrompt, n, "prompts_with_systemPrompt")
        targets = _as_list(target_new, n, "target_new")
        truths = _as_list(ground_truth, n, "ground_truth")
        general = _as_list(general_prompt, n, "general_prompt")
        general_sys = _as_list(general_prompt_with_systemPrompt, n, "general_prompt_with_systemPrompt")
        case_ids = _as_list(kwargs.get("case_id"), n, "case_id") if kwargs.get("case_id") is not None else list(range(n))
        # DINM edits and is evaluated on the inputs carrying the suffix system prompt (as in EasyEdit).
        use_system = editing_method == "DINM"
        all_metrics, edited_model, weights_copy = [], self.model, {}
        for i in range(n):
            pre_inputs = [prompts[i]] + list(general[i] or [])
            post_inputs = ([with_system[i]] + list(general_sys[i] or [])) if use_system else pre_inputs
            request = {"prompt": with_system[i] if use_system else prompts[i], "target_new": targets[i],
                       "ground_truth": truths[i], "portability": {},
                       "locality": _locality_for(locality_inputs_with_systemPrompt if use_system else locality_inputs, i, n)}
            pre = self._responses(self.model, pre_inputs)
            report: Dict[str, Any] = {}
            start = time.perf_counter()
            edited_model, weights_copy = self.apply_algo(
                self.model, self.tok, [request], self.hparams, copy=False, return_orig_weights=True,
                keep_original_weight=keep_original_weight, report=report)
            seconds = time.perf_counter() - start
            post = self._responses(edited_model, post_inputs)
            if keep_original_weight:
                restore_weights(self.model, edited_model, weights_copy, self.alg_name)
            metrics = {"case_id": case_ids[i], "requested_rewrite": request, "time": seconds, "pre": pre, "post": post}
            if report:
                metrics["edit"] = {k: report[k] for k in ("layers", "losses", "stopped_early") if k in report}
            all_metrics.append(metrics)
            if verbose:
                LOG.info("case %s: edited in %.2fs; DS response before %r / after %r", case_ids[i], seconds,
                         pre.get("DS", "")[:60], post.get("DS", "")[:60])
        return all_metrics, edited_model, weights_copy
