"""This package's DINM (Wang et al., ACL 2024): its hparams, its apply function, the suffix, its report."""

from __future__ import annotations

from typing import Callable, Optional

from .base import BATCH, MethodAdapter, register_adapter


@register_adapter
class DINMAdapter(MethodAdapter):
    """`alg_name: DINM` (unless EASYEDIT_DETOX_DINM=easyedit picks EasyEdit's) and `DINM-detox`."""

    alg_name = "DINM"
    aliases = ("DINM-detox",)
    uses_suffix = True  # SafeEdit's protocol: the edit and the post-edit inputs carry the suffix system prompt
    returns_originals = True  # its weights_copy holds the original of every tensor it wrote
    global_mode = BATCH  # several requests in one call are edited together (summed losses, union of layers)
    ours = True

    def hparams_class(self, prefer: Optional[str] = None) -> type:
        from easyedit_detox.dinm import DINMHyperParams

        return DINMHyperParams

    def apply_fn(self, prefer: Optional[str] = None) -> Callable:
        from easyedit_detox.dinm import apply_dinm_to_model

        return apply_dinm_to_model
