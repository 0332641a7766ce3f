"""SFT, the paper's first detox baseline: supervised fine-tuning on (adversarial prompt -> safe generation) with TRL.

Each request is a prompt-completion pair, the prompt in the run's format (raw or chat) and the completion
its `target_new` (SafeEdit's safe generation); the loss is on the completion only (TRL's
`completion_only_loss`). See trl_training.py for how the run is made to behave like an EasyEdit method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .base import BATCH, MethodAdapter, register_adapter
from .trl_training import TrainingHyperParams, apply_with_trl, train_with_trl, trl


@dataclass
class SFTHyperParams(TrainingHyperParams):
    """Settings of SFT with TRL's SFTTrainer, loaded from an EasyEdit-style YAML with `from_hparams`."""

    ALG_NAMES = ("SFT",)
    EXAMPLE = "hparams/SFT/smollm2-135m-instruct.yaml"
    alg_name: str = "SFT"


def sft_config(hparams: SFTHyperParams, out_dir: str, device):
    """TRL's SFTConfig for these settings: prompt-completion data, the loss on the completion."""
    return trl().SFTConfig(**hparams.training_arguments(out_dir, device), completion_only_loss=True)


def train_sft(model, tok, requests, hparams: SFTHyperParams, on_step=None):
    """Fine-tune `model` in place on the requests' (prompt -> target_new) pairs with TRL's SFTTrainer."""
    return train_with_trl(model, tok, requests, hparams, {"prompt": "prompt", "completion": "target_new"},
                          "SFTTrainer", sft_config, on_step)


def apply_sft_to_model(model, tok, requests, hparams: SFTHyperParams, copy: bool = False,
                       return_orig_weights: bool = False, keep_original_weight: bool = False, **kwargs):
    """Apply SFT to `model` (EasyEdit's apply-function contract); returns (model, weights_copy)."""
    return apply_with_trl(model, tok, requests, hparams, train_sft, copy, return_orig_weights,
                          keep_original_weight, kwargs)


@register_adapter
class SFTAdapter(MethodAdapter):
    """SFT: this package's, through TRL; all training requests in one run (the global protocol)."""

    alg_name = "SFT"
    returns_originals = True
    global_mode = BATCH
    ours = True

    def hparams_class(self, prefer=None) -> type:
        return SFTHyperParams

    def apply_fn(self, prefer=None) -> Callable:
        return apply_sft_to_model
