"""EasyEdit's GRACE (a codebook wrapped around one layer; EasyEdit from git): its own undo restores the layer."""

from __future__ import annotations

from .base import MethodAdapter, register_adapter


@register_adapter
class GRACEAdapter(MethodAdapter):
    """GRACE swaps a layer for a wrapper, so its edits cannot be kept as plain weights."""

    alg_name = "GRACE"
    hparams_class_name = "GraceHyperParams"
    writes_no_parameters = True
    global_refused = ("its edits live in a codebook wrapped around a layer, not in the model's weights, so one "
                      "detoxified model cannot be kept and shipped")
