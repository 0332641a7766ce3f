"""Loading a model and tokenizer by class from hparams (`model_class`, `tokenizer_class`), on any device."""

from __future__ import annotations

import logging
import os
import re
from typing import Optional, Tuple

import torch
import transformers

from easyedit_detox.core.errors import HyperParamsError, UserError
from easyedit_detox.core.dtypes import parse_dtype
from easyedit_detox.core.devices import resolve_device
from .gguf_models import converted_folder, is_gguf_name

LOG = logging.getLogger(__name__)

def _transformers_class(name: str, key: str):
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    if cls is None:
        raise HyperParamsError(f"hparams key {key!r} is {name!r}, which transformers does not have; use a class "
                               "name such as LlamaForCausalLM / AutoModelForCausalLM (model) or AutoTokenizer")
    return cls


def _looks_like_hub_id(name: str) -> bool:
    return bool(re.fullmatch(r"[\w-][\w.-]*(/[\w.-]+)?", name))


def process_device(device) -> torch.device:
    """The hparams device, except that each process of a multi-process launch takes its own GPU."""
    resolved = resolve_device(device)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = os.environ.get("LOCAL_RANK")
    if resolved.type == "cuda" and world > 1 and local_rank is not None:
        return torch.device(f"cuda:{int(local_rank) % torch.cuda.device_count()}")
    return resolved


def load_model_and_tokenizer(hparams, dtype: Optional[str] = None) -> Tuple[torch.nn.Module, object]:
    """Load `hparams.model_name` with its hparams classes onto `hparams.device` (or a device_map)."""
    # PyPI's hparams classes for other methods have no model_class/tokenizer_class: use the Auto ones.
    model_class = getattr(hparams, "model_class", None) or "AutoModelForCausalLM"
    tokenizer_class = getattr(hparams, "tokenizer_class", None) or "AutoTokenizer"
    model_parallel = bool(getattr(hparams, "model_parallel", False))
    model_cls = _transformers_class(model_class, "model_class")
    tok_cls = _transformers_class(tokenizer_class, "tokenizer_class")
    name = os.path.expanduser(str(hparams.model_name))
    if is_gguf_name(name):
        name = converted_folder(name)
    if not os.path.isdir(name) and not _looks_like_hub_id(name):
        raise UserError(f"model folder {name!r} (hparams 'model_name') does not exist; download the "
                        "checkpoint there or point model_name at the folder that holds config.json")
    torch_dtype = parse_dtype(dtype or "float32")
    kwargs = {"torch_dtype": torch_dtype}
    if model_parallel:
        kwargs["device_map"] = "auto"  # accelerate spreads the layers over the visible GPUs
    try:
        model = model_cls.from_pretrained(name, **kwargs)
        tok = tok_cls.from_pretrained(name)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot load model {name!r} with {model_class}/{tokenizer_class}: "
                        f"{first}; pass a local checkpoint folder (nothing is downloaded here)") from None
    if not model_parallel:
        model = model.to(process_device(getattr(hparams, "device", "auto")))
    if tok.pad_token_id is None:
        # GPT-2 and LLaMA tokenizers have no pad token; generation pads with EOS as EasyEdit does.
        tok.pad_token = tok.eos_token
    model.eval()
    LOG.info("loaded %s (%s, %s) on %s", name, model_class, torch_dtype,
             "device_map=auto" if model_parallel else next(model.parameters()).device)
    return model, tok
