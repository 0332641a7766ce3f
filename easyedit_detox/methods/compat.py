"""Making an easyeditor method run with today's libraries and models without changing what it computes, per call.

PyPI's easyeditor 0.0.1.dev0 builds its LoRA as `AdaLoraConfig(r=..., lora_alpha=..., ...)` without
`total_step`, which peft >= 0.14 refuses ("AdaLoRA does not work when total_step is None");
EasyEdit from git does the same for `lora_type: adalora`. `total_step` only schedules AdaLoRA's rank
budget, which `update_and_allocate` applies and EasyEdit's training loop never calls, so supplying
the number of optimizer steps that loop takes (num_steps x batches) changes nothing it computes:
the adapters, their initialisation and the orthogonal regularisation in the loss stay AdaLoRA's.

EasyEdit-git's WISE builds its context templates from the model's own generations plus " {}" and
fills them with `str.format`, so a generated "{" or "}" crashes the edit ("unexpected '{' in field
name"; ROME's version of the same code strips braces). Doubling the braces of the generated part
makes `format` reproduce that text literally, which is what the templates mean.
"""

from __future__ import annotations

import functools
import inspect
import math
import sys
from contextlib import contextmanager
from typing import Iterator


def _needs_total_step(config_cls) -> bool:
    try:
        source = inspect.getsource(config_cls.__post_init__)
    except (OSError, TypeError, AttributeError):
        return False
    return "total_step" in source


@contextmanager
def method_compat(method_name: str, hparams, n_requests: int) -> Iterator[None]:
    """Within the block, the installed easyeditor's `method_name` runs as it means to (see the module docstring)."""
    if method_name == "WISE":
        with _wise_templates_escaped():
            yield
        return
    with _adalora_total_step(method_name, hparams, n_requests):
        yield


@contextmanager
def _wise_templates_escaped() -> Iterator[None]:
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


@contextmanager
def _adalora_total_step(method_name: str, hparams, n_requests: int) -> Iterator[None]:
    module = sys.modules.get("easyeditor.models.lora.lora_main") if method_name == "LoRA" else None
    original = getattr(module, "AdaLoraConfig", None) if module is not None else None
    if original is None or isinstance(original, functools.partial) or not _needs_total_step(original):
        yield
        return
    from .scoped import scoped_patch

    batches = math.ceil(n_requests / max(1, int(getattr(hparams, "batch_size", 1) or 1)))
    total = max(1, int(hparams.num_steps) * batches)
    with scoped_patch(module, "AdaLoraConfig", lambda current: functools.partial(current, total_step=total),
                      key=total, what="LoRA's AdaLoRA total_step"):
        yield
