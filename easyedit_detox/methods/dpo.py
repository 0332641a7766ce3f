"""DPO, the paper's second detox baseline: direct preference optimisation with TRL's DPOTrainer.

Each request is a preference pair: the prompt in the run's format (raw or chat), `target_new` (SafeEdit's
safe generation) chosen and `ground_truth` (the unsafe one) rejected. The reference model is the model
before training; its log-probabilities are computed before the first step (`precompute_ref_log_probs`),
so no second copy of the model is held. EasyEdit from git ships a DPO of its own (a hand-written LoRA
loop); registering this one moves it to `DPO-EasyEdit` (see registration.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .base import BATCH, MethodAdapter, register_adapter
from .trl_training import TrainingHyperParams, apply_with_trl, train_with_trl, trl
from .yaml_hparams import is_number


@dataclass
class DPOHyperParams(TrainingHyperParams):
    """Settings of DPO with TRL's DPOTrainer, loaded from an EasyEdit-style YAML with `from_hparams`."""

    ALG_NAMES = ("DPO",)
    EXAMPLE = "hparams/DPO/smollm2-135m-instruct.yaml"
    alg_name: str = "DPO"
    beta: float = 0.1  # the strength of the pull towards the reference model (TRL's default)

    def __post_init__(self):
        super().__post_init__()
        self.check("beta", is_number(self.beta) and self.beta > 0, "a number > 0 (e.g. 0.1)")


def dpo_config(hparams: DPOHyperParams, out_dir: str, device):
    """TRL's DPOConfig for these settings, the reference log-probabilities computed before training."""
    return trl().DPOConfig(**hparams.training_arguments(out_dir, device), beta=hparams.beta,
                           precompute_ref_log_probs=True)


def train_dpo(model, tok, requests, hparams: DPOHyperParams, on_step=None):
    """Train `model` in place on the requests' (prompt, target_new chosen, ground_truth rejected) pairs."""
    columns = {"prompt": "prompt", "chosen": "target_new", "rejected": "ground_truth"}
    return train_with_trl(model, tok, requests, hparams, columns, "DPOTrainer", dpo_config, on_step)


def apply_dpo_to_model(model, tok, requests, hparams: DPOHyperParams, copy: bool = False,
                       return_orig_weights: bool = False, keep_original_weight: bool = False, **kwargs):
    """Apply DPO to `model` (EasyEdit's apply-function contract); returns (model, weights_copy)."""
    return apply_with_trl(model, tok, requests, hparams, train_dpo, copy, return_orig_weights,
                          keep_original_weight, kwargs)


@register_adapter
class DPOAdapter(MethodAdapter):
    """DPO: this package's, through TRL; all training requests in one run (the global protocol)."""

    alg_name = "DPO"
    returns_originals = True
    global_mode = BATCH
    ours = True

    def hparams_class(self, prefer=None) -> type:
        return DPOHyperParams

    def apply_fn(self, prefer=None) -> Callable:
        return apply_dpo_to_model
