"""EasyEdit's WISE (a side memory beside one MLP; EasyEdit from git): the request it reads, and one shim.

WISE trains against an unrelated text to keep (`loc_prompt`): SafeEdit's general-knowledge
constraint, as prompt + answer. EasyEdit-git's WISE builds its context templates from the model's own
generations plus " {}" and fills them with `str.format`, so a generated "{" or "}" crashes the edit
("unexpected '{' in field name"; ROME's version of the same code strips braces). Doubling the braces
of the generated part makes `format` reproduce that text literally, which is what the templates mean.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from .base import MethodAdapter, register_adapter


@contextlib.contextmanager
def wise_templates_escaped() -> Iterator[None]:
    """Within the block, WISE's generated context templates have their braces doubled."""
    module = sys.modules.get("easyeditor.models.wise.wise_main")
    original = getattr(module, "get_context_templates", None) if module is not None else None
    if original is None:
        yield
        return

    from .scoped import scoped_patch

    def escaping(current):
        def escaped(*args, **kwargs):
            templates = current(*args, **kwargs)
            return [t if t == "{}" else t[: -len(" {}")].replace("{", "{{").replace("}", "}}") + " {}"
                    for t in templates]
        return escaped

    # Threads share one escaping wrapper: escaping twice would double the braces again.
    with scoped_patch(module, "get_context_templates", escaping, what="WISE's template escaping"):
        yield


@register_adapter
class WISEAdapter(MethodAdapter):
    """WISE reads `loc_prompt` and edits a side copy of one MLP weight (a wrapper: not kept as plain weights)."""

    alg_name = "WISE"
    hparams_class_name = "WISEHyperParams"
    writes_no_parameters = True
    global_refused = ("its edits live in a side memory wrapped around an MLP, routed per input, not in the model's "
                      "weights, so one detoxified model cannot be kept and shipped")

    def adapt_request(self, request):
        if "loc_prompt" in request:
            return request
        constraint = (request.get("locality") or {}).get("general knowledge constraint") or {}
        return {**request,
                "loc_prompt": f"{constraint.get('prompt', '')} {constraint.get('ground_truth', '')}".strip()}

    def compat(self, hparams, n_requests):
        return wise_templates_escaped()
