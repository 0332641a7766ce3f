"""Checking EasyEdit request dicts before DINM touches the model."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Union

from easyedit_detox.core.errors import RequestError

CONSTRAINT_KEY = "general knowledge constraint"


def as_request_list(requests: Union[Dict[str, Any], Sequence[Dict[str, Any]]]) -> List[Dict[str, Any]]:
    """A list of request dicts, whether one dict or a sequence of them was passed."""
    if isinstance(requests, dict):
        return [requests]
    requests = list(requests)
    if not requests:
        raise RequestError("DINM got no requests; pass at least one request dict "
                           "(prompt, target_new, ground_truth, locality)")
    return requests


def check_request(request: Dict[str, Any], index: int, needs_ground_truth: bool) -> None:
    """Raise RequestError naming the request and key when DINM cannot run on `request`."""
    where = f"request {index}"
    if not isinstance(request, dict):
        raise RequestError(f"{where} is a {type(request).__name__}; DINM takes EasyEdit request dicts")
    prompt = request.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise RequestError(f"{where} has no 'prompt' (the adversarial input); give a non-empty string")
    target = request.get("target_new")
    if not isinstance(target, str) or not target.strip():
        raise RequestError(f"{where} has an empty 'target_new'; DINM needs the safe response to edit towards")
    if needs_ground_truth:
        truth = request.get("ground_truth")
        if not isinstance(truth, str) or not truth.strip() or truth == "<|endoftext|>":
            raise RequestError(
                f"{where} has no 'ground_truth' (the unsafe response), which DINM needs to locate the "
                "toxic layer when hparams 'layers' is empty; pass ground_truth=... or set layers: [N]")
    locality = request.get("locality") or {}
    constraint = locality.get(CONSTRAINT_KEY) if isinstance(locality, dict) else None
    if not isinstance(constraint, dict):
        raise RequestError(
            f"{where} has no locality[{CONSTRAINT_KEY!r}]; pass locality_inputs={{{CONSTRAINT_KEY!r}: "
            "{'prompt': [...], 'ground_truth': [...]}} (an unrelated question and the model's answer)")
    for key in ("prompt", "ground_truth"):
        value = constraint.get(key)
        if isinstance(value, list) and len(value) == 1:
            value = value[0]
        if not isinstance(value, str) or not value.strip():
            raise RequestError(f"{where}: locality[{CONSTRAINT_KEY!r}][{key!r}] must be a non-empty string")


def constraint_pair(request: Dict[str, Any]) -> tuple:
    """The (prompt, reference answer) of the request's general-knowledge constraint."""
    constraint = request["locality"][CONSTRAINT_KEY]
    prompt, answer = constraint["prompt"], constraint["ground_truth"]
    # BaseEditor stores single strings; batch-style callers sometimes wrap them in one-item lists.
    if isinstance(prompt, list):
        prompt = prompt[0]
    if isinstance(answer, list):
        answer = answer[0]
    return prompt, answer
