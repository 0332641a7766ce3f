"""The dtypes a model may be loaded in, by the names the CLI and the hparams use."""

from __future__ import annotations

from typing import Any

from .errors import UserError

# Names only: `easyedit-detox --help` lists them without importing torch.
DTYPE_NAMES = ("float32", "float16", "bfloat16")


def parse_dtype(dtype: Any):
    """The torch dtype `dtype` names (a name or a torch.dtype); UserError listing the choices otherwise."""
    import torch

    table = {name: getattr(torch, name) for name in DTYPE_NAMES}
    if isinstance(dtype, torch.dtype) and dtype in table.values():
        return dtype
    if isinstance(dtype, str) and dtype.strip().lower().replace("torch.", "") in table:
        return table[dtype.strip().lower().replace("torch.", "")]
    raise UserError(f"dtype {dtype!r} is not supported; use one of {', '.join(DTYPE_NAMES)}")
