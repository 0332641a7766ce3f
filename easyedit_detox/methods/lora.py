"""EasyEdit's LoRA (peft adapters, LoRA or AdaLoRA), and the one shim today's peft needs for it.

PyPI's easyeditor 0.0.1.dev0 builds its LoRA as `AdaLoraConfig(r=..., lora_alpha=..., ...)` without
`total_step`, which peft >= 0.14 refuses ("AdaLoRA does not work when total_step is None");
EasyEdit from git does the same for `lora_type: adalora`. `total_step` only schedules AdaLoRA's rank
budget, which `update_and_allocate` applies and EasyEdit's training loop never calls, so supplying
the number of optimizer steps that loop takes (num_steps x batches) changes nothing it computes:
the adapters, their initialisation and the orthogonal regularisation in the loss stay AdaLoRA's.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
import sys
from typing import Iterator

from .base import BATCH, MethodAdapter, register_adapter


def _needs_total_step(config_cls) -> bool:
    try:
        source = inspect.getsource(config_cls.__post_init__)
    except (OSError, TypeError, AttributeError):
        return False
    return "total_step" in source


@contextlib.contextmanager
def adalora_total_step(hparams, n_requests: int) -> Iterator[None]:
    """Within the block, easyeditor's AdaLoraConfig gets the `total_step` its training loop takes."""
    module = sys.modules.get("easyeditor.models.lora.lora_main")
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


@register_adapter
class LoRAAdapter(MethodAdapter):
    """LoRA adds peft adapter layers (merged into the weights when an edit is kept)."""

    alg_name = "LoRA"
    hparams_class_name = "LoRAHyperParams"
    writes_no_parameters = True
    global_mode = BATCH  # apply_lora_to_model trains on every request, in chunks of `batch_size`

    def compat(self, hparams, n_requests):
        return adalora_total_step(hparams, n_requests)
