"""Device strings from hparams: an int (CUDA index), 'cpu', 'cuda', 'cuda:N' or 'auto'."""

from __future__ import annotations

import re
from typing import Union

import torch

from .errors import HyperParamsError

_CUDA_N = re.compile(r"^cuda:(\d+)$")


def parse_device(device: Union[int, str]) -> str:
    """Normalise an hparams `device` to a torch device string without touching any GPU."""
    if isinstance(device, bool):
        raise HyperParamsError(f"hparams key 'device' is {device!r}; use an int (CUDA index), "
                               "'cpu', 'cuda', 'cuda:N' or 'auto'")
    if isinstance(device, int):
        if device < 0:
            raise HyperParamsError(f"hparams key 'device' is {device}; a CUDA index must be >= 0")
        return f"cuda:{device}"
    if isinstance(device, str):
        text = device.strip().lower()
        if text.isdigit():
            return f"cuda:{int(text)}"
        if text in ("cpu", "cuda", "auto") or _CUDA_N.match(text):
            return text
    raise HyperParamsError(f"hparams key 'device' is {device!r}; use an int (CUDA index), "
                           "'cpu', 'cuda', 'cuda:N' or 'auto'")


def resolve_device(device: Union[int, str]) -> torch.device:
    """The torch.device to load onto: 'auto' means the first GPU when there is one, else the CPU."""
    text = parse_device(device)
    if text == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if text.startswith("cuda") and not torch.cuda.is_available():
        raise HyperParamsError(f"hparams key 'device' is {device!r} but no CUDA GPU is visible; "
                               "set device: cpu (or auto)")
    return torch.device(text)


def input_device(model) -> torch.device:
    """The device token ids must be on: that of the input embeddings (also under a device_map)."""
    try:
        return model.get_input_embeddings().weight.device
    except (AttributeError, NotImplementedError):
        return next(model.parameters()).device
