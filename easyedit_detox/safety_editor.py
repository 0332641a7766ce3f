"""`SafetyEditor`: EasyEdit-git's safety editor interface, on CPU or GPU, for any EasyEdit method.

A script written for EasyEdit's `SafetyEditor` works by changing its import:
`metrics, edited_model, weights_copy = editor.edit(editing_method=..., prompts=...,
prompts_with_systemPrompt=..., target_new=..., ground_truth=..., locality_inputs=...,
locality_inputs_with_systemPrompt=..., general_prompt=..., general_prompt_with_systemPrompt=...,
keep_original_weight=True)`; `metrics[i]["pre"|"post"]` maps DS and the four DG keys to responses.

As in EasyEdit's: every "pre" comes from the vanilla model, computed for all prompts before the
first edit. With `keep_original_weight=True` each edit is undone after its "post" (exactly, checked
against the weights' digests, also when an error or Ctrl-C interrupts it); with False the edits
accumulate, each starting from the model the previous ones left.
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional, Sequence, Union

from easyedit_detox.core.errors import UserError
from easyedit_detox.data.safeedit import METRIC_KEYS
from easyedit_detox.evaluation.easyedit_protocol import easyedit_generate, seed_like_easyedit
from easyedit_detox.evaluation.formats import PromptFormat
from easyedit_detox.evaluation.generation import GenerationSettings, generate_responses
from easyedit_detox.evaluation.runner import PROTOCOLS, generation_defaults
from easyedit_detox.methods.registry import resolve_method
from easyedit_detox.methods.session import UndoSession, generation_model
from easyedit_detox.easyedit.upstream import easyeditor
from easyedit_detox.easyedit.loading import load_model_and_tokenizer

BaseEditor = easyeditor().BaseEditor

LOG = logging.getLogger(__name__)


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
    def from_hparams(cls, hparams, model=None, tok=None, dtype: Optional[str] = None,
                     generation: Optional[GenerationSettings] = None, prompt_format: str = "raw",
                     protocol: str = "greedy") -> "SafetyEditor":
        """Build from hparams; loads the model by its `model_class`/`tokenizer_class` unless one is given."""
        return cls(hparams, model=model, tok=tok, dtype=dtype, generation=generation, prompt_format=prompt_format,
                   protocol=protocol)

    def __init__(self, hparams, model=None, tok=None, dtype: Optional[str] = None,
                 generation: Optional[GenerationSettings] = None, prefer: Optional[str] = None,
                 prompt_format: str = "raw", protocol: str = "greedy"):
        # protocol "greedy" (SAFEEDIT.md, `evaluate`'s default) or "easyedit": EasyEdit-git's test_safety_gen,
        # the checkpoint's generation config seeded with 42, as `evaluate --generation easyedit`.
        if protocol not in PROTOCOLS:
            raise UserError(f"SafetyEditor protocol {protocol!r} is unknown; use one of {list(PROTOCOLS)}")
        if protocol == "easyedit" and prompt_format != "raw":
            raise UserError("protocol='easyedit' reproduces EasyEdit's test_safety_gen, which feeds the raw text; "
                            "use it with prompt_format='raw', or protocol='greedy' for the chat format")
        self.protocol = protocol
        self._seeded = False
        # BaseEditor.__init__ is not called: PyPI's hard-codes `model.to(f"cuda:{device}")` and
        # picks model classes from substrings of the name.
        self.hparams = hparams
        self.alg_name = hparams.alg_name
        self.method = resolve_method(str(hparams.alg_name), prefer)
        self.apply_algo = self.method.apply_fn
        if model is None and isinstance(hparams.model_name, tuple):
            model, tok = hparams.model_name
        if model is None:
            model, tok = load_model_and_tokenizer(hparams, dtype=dtype)
        if tok is None:
            raise UserError("SafetyEditor got a model without its tokenizer; pass tok=... as well")
        self.model, self.tok = model, tok
        # raw (EasyEdit's): the texts as given; chat: each through the tokenizer's chat template (formats.py).
        self.format = PromptFormat(prompt_format, tok)
        self.model_name = hparams.model_name if isinstance(hparams.model_name, str) else type(model).__name__
        if generation is None:
            length, output = generation_defaults(hparams)
            generation = GenerationSettings(length, output, batch_size=8)
        self.generation = generation
        self._editor: Optional[UndoSession] = None

    @property
    def editor(self) -> UndoSession:
        """The method runner, created on first use (it digests the vanilla weights once)."""
        if self._editor is None:
            self._editor = UndoSession(self.model, self.tok, self.hparams, method=self.method)
        return self._editor

    def _responses(self, model, inputs: Sequence[str]) -> Dict[str, str]:
        if self.protocol == "easyedit":
            if not self._seeded:  # once, before the first generation, as importing EasyEdit's safety_editor.py does
                seed_like_easyedit()
                self._seeded = True
            gens = easyedit_generate(model, self.tok, list(inputs), self.generation.max_length,
                                     self.generation.max_output_length)
        else:
            gens = generate_responses(model, self.tok, [self.format(text) for text in inputs], self.generation)
        return {key: g.text for key, g in zip(METRIC_KEYS, gens)}

    def edit(self, editing_method: str, prompts: Union[str, List[str]], prompts_with_systemPrompt: Union[str, List[str]],
             target_new: Union[str, List[str]], ground_truth: Optional[Union[str, List[str]]] = None,
             locality_inputs: Optional[Dict] = None, locality_inputs_with_systemPrompt: Optional[Dict] = None,
             general_prompt: Optional[List[List[str]]] = None,
             general_prompt_with_systemPrompt: Optional[List[List[str]]] = None,
             keep_original_weight: bool = False, verbose: bool = True, **kwargs):
        """Edit each prompt and return (all_metrics, edited_model, weights_copy), as EasyEdit's SafetyEditor."""
        if editing_method != self.alg_name:
            raise UserError(f"editing_method {editing_method!r} differs from the hparams' alg_name {self.alg_name!r}; "
                            "load the hparams of the method you want to run")
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        n = len(prompts)
        with_system = _as_list(prompts_with_systemPrompt, n, "prompts_with_systemPrompt")
        targets = _as_list(target_new, n, "target_new")
        truths = _as_list(ground_truth, n, "ground_truth")
        general = _as_list(general_prompt, n, "general_prompt")
        general_sys = _as_list(general_prompt_with_systemPrompt, n, "general_prompt_with_systemPrompt")
        case_ids = _as_list(kwargs.get("case_id"), n, "case_id") if kwargs.get("case_id") is not None else list(range(n))
        # DINM edits and is evaluated on the inputs carrying the suffix system prompt (as in EasyEdit).
        use_system = self.method.uses_suffix
        requests, post_inputs = [], []
        for i in range(n):
            post_inputs.append(([with_system[i]] + list(general_sys[i] or [])) if use_system
                               else [prompts[i]] + list(general[i] or []))
            requests.append(self.format.request({
                "prompt": with_system[i] if use_system else prompts[i], "target_new": targets[i],
                "ground_truth": truths[i], "portability": {},
                "locality": _locality_for(locality_inputs_with_systemPrompt if use_system else locality_inputs, i, n)}))
        # Every "pre" from the vanilla model first, as EasyEdit's SafetyEditor does.
        pre = [self._responses(self.model, [prompts[i]] + list(general[i] or [])) for i in range(n)]
        all_metrics, weights_copy = [], {}
        for i in range(n):
            if keep_original_weight:
                with self.editor.edited(requests[i]) as edit:
                    post = self._responses(generation_model(edit, self.model), post_inputs[i])
                    weights_copy = edit.originals
                    info = edit.info
            else:
                edit = self.editor.keep(requests[i])
                post = self._responses(self.model, post_inputs[i])
                weights_copy, info = {}, edit.info
            metrics = {"case_id": case_ids[i], "requested_rewrite": requests[i], "time": info.get("seconds"),
                       "pre": pre[i], "post": post}
            edit_info = {k: info[k] for k in ("layers", "losses", "stopped_early") if k in info}
            if edit_info:
                metrics["edit"] = edit_info
            all_metrics.append(metrics)
            if verbose:
                LOG.info("case %s: edited in %.2fs; DS response before %r / after %r", case_ids[i], info.get("seconds", 0),
                         pre[i].get("DS", "")[:60], post.get("DS", "")[:60])
        return all_metrics, self.model, weights_copy
