"""EasyEdit's FT (FT-L: fine-tuning the MLP output weights of `layers`), from the installed easyeditor."""

from __future__ import annotations

from .base import BATCH, MethodAdapter, module_names, register_adapter


@register_adapter
class FTAdapter(MethodAdapter):
    """FT writes the parameters under `rewrite_module_tmp` of `layers` (PyPI's hands back their originals only
    with `keep_original_weight=True`, so they are copied before it runs)."""

    alg_name = "FT"
    hparams_class_name = "FTHyperParams"
    global_mode = BATCH  # apply_ft_to_model trains on every request, in chunks of `batch_size`

    def predicted_writes(self, hparams, model, memo):
        return module_names(model, [hparams.rewrite_module_tmp], list(hparams.layers))
