"""DINM: locate the toxic layer, then tune its MLP output projection (Wang et al., ACL 2024)."""

from .dinm_main import EditReport, apply_dinm_to_model, execute_dinm, plan_edit
from .hparams import DINMHyperParams
from .locate import layer_distances, locate_toxic_layer

__all__ = ["DINMHyperParams", "apply_dinm_to_model", "execute_dinm", "plan_edit", "EditReport",
           "locate_toxic_layer", "layer_distances"]
