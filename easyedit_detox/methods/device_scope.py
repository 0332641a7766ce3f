"""Running an easyeditor method on the model's device, although PyPI's easyeditor writes `cuda:{device}` by hand.

PyPI's FT, LoRA and MEND build `torch.device(f"cuda:{hparams.device}")` and call
`.to(f"cuda:{hparams.device}")`, so on a machine without a GPU (or for a model on another device)
they fail. Inside `on_device(device)`:
- in every loaded `easyeditor` module, the name `torch` refers to a stand-in whose `device(...)`
  turns a CUDA device into `device` (everything else is the real torch);
- `.to(...)` of tensors, modules and tokenizer outputs, when called from easyeditor's own code,
  sends a CUDA target to `device`.
Nothing in easyeditor's files changes, other code is unaffected, and all of it is undone when the
block ends (also on errors and Ctrl-C). EasyEdit from git reads `hparams.device` through its own
`normalize_device`, which accepts 'cpu', so `hparams_on_device` is all it needs.
"""

from __future__ import annotations

import copy
import re
import sys
import types
from contextlib import ExitStack, contextmanager
from typing import Iterator, Union

import torch

_CUDA = re.compile(r"^\s*cuda(:\d+)?\s*$")


def _is_cuda(value) -> bool:
    if isinstance(value, str):
        return bool(_CUDA.match(value))
    if isinstance(value, torch.device):
        return value.type == "cuda"
    return isinstance(value, int) and not isinstance(value, bool)


def _from_easyeditor(depth: int = 2) -> bool:
    frame = sys._getframe(depth)
    return str(frame.f_globals.get("__name__", "")).startswith("easyeditor")


class _DeviceMeta(type):
    """Makes `isinstance(x, torch.device)` inside easyeditor's modules keep meaning the real torch.device."""

    def __instancecheck__(cls, instance) -> bool:
        return isinstance(instance, torch.device)


def _device_class(target: torch.device) -> type:
    class device(metaclass=_DeviceMeta):  # noqa: N801  (stands in for torch.device by name)
        def __new__(cls, *args, **kwargs):
            made = torch.device(*args, **kwargs)
            return target if made.type == "cuda" else made

    return device


class _TorchStandIn(types.ModuleType):
    """torch, except that `device(...)` of a CUDA device gives the target device."""

    def __init__(self, real, target: torch.device):
        super().__init__("torch")
        object.__setattr__(self, "_real", real)
        object.__setattr__(self, "device", _device_class(target))

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_real"), name)


def _redirecting(original, target: torch.device):
    def to(self, *args, **kwargs):
        if _from_easyeditor():
            args = tuple(target if i == 0 and _is_cuda(a) else a for i, a in enumerate(args))
            if "device" in kwargs and _is_cuda(kwargs["device"]):
                kwargs["device"] = target
        return original(self, *args, **kwargs)
    to.__wrapped__ = original
    return to


@contextmanager
def on_device(device: Union[str, torch.device]) -> Iterator[None]:
    """Within the block, easyeditor's hard-coded CUDA devices mean `device` (a no-op for a CUDA device)."""
    from easyedit_detox.easyedit.upstream import GIT, flavour

    target = torch.device(device)
    if target.type == "cuda" or flavour() == GIT:
        # A CUDA model: the method's own cuda:{hparams.device} is right once hparams name its GPU.
        # EasyEdit from git reads hparams.device through normalize_device, which takes 'cpu'.
        yield
        return
    from transformers import BatchEncoding

    from .scoped import scoped_patch

    # Shared by threads on the same device (the first in patches, the last out restores); another device at
    # the same time is refused in one line rather than undone under the first.
    what = f"easyeditor's CUDA redirection (to {target})"
    with ExitStack() as stack:
        for name, module in list(sys.modules.items()):
            if name.startswith("easyeditor") and (getattr(module, "torch", None) is torch
                                                  or isinstance(getattr(module, "torch", None), _TorchStandIn)):
                stack.enter_context(scoped_patch(module, "torch", lambda _: _TorchStandIn(torch, target),
                                                 key=str(target), what=what))
        for cls in (torch.Tensor, torch.nn.Module, BatchEncoding):
            stack.enter_context(scoped_patch(cls, "to", lambda current: _redirecting(current, target),
                                             key=str(target), what=what))
        yield


def hparams_on_device(hparams, device: Union[str, torch.device]):
    """A shallow copy of `hparams` whose `device` names `device` the way the installed easyeditor reads it."""
    from easyedit_detox.easyedit.upstream import GIT, flavour

    target = torch.device(device)
    clone = copy.copy(hparams)
    if not hasattr(clone, "device"):
        return clone
    if target.type == "cuda":
        clone.device = target.index or 0  # PyPI's f"cuda:{device}" and git's normalize_device both read an int
    elif flavour() == GIT:
        clone.device = str(target)
    else:
        clone.device = 0  # a valid "cuda:0" string for PyPI's methods, which `on_device` then sends to `target`
    return clone
