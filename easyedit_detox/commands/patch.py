"""The `patch apply` and `patch revert` commands: a model folder in, a patched (or unpatched) model folder out."""

from __future__ import annotations

import collections
import os
from typing import Callable, Union

import torch

from easyedit_detox.core.dtypes import parse_dtype
from easyedit_detox.core.errors import UserError
from easyedit_detox.shipping.patches import Patch, apply_patch, load_patch, revert_patch
from easyedit_detox.shipping.save import check_out_dir, save_model


def patch_apply(model_dir: Union[str, os.PathLike], patch_path: Union[str, os.PathLike],
                out_dir: Union[str, os.PathLike], dtype: Union[str, torch.dtype, None] = None) -> str:
    """Save to `out_dir` the model of `model_dir` with the patch applied; returns the folder written."""
    return _rewrite(model_dir, patch_path, out_dir, dtype, apply_patch)


def patch_revert(model_dir: Union[str, os.PathLike], patch_path: Union[str, os.PathLike],
                 out_dir: Union[str, os.PathLike], dtype: Union[str, torch.dtype, None] = None) -> str:
    """Save to `out_dir` the model of `model_dir` with the patch taken off; returns the folder written."""
    return _rewrite(model_dir, patch_path, out_dir, dtype, revert_patch)


def _rewrite(model_dir, patch_path, out_dir, dtype, change: Callable) -> str:
    """Load the model, change it with the patch, save it atomically."""
    patch = load_patch(patch_path)
    # Checked before loading: a refusal should not cost the minutes a large model takes to load.
    check_out_dir(out_dir)
    model, tokenizer = load_model_folder(model_dir, parse_dtype(dtype) if dtype is not None else patch_dtype(patch))
    change(model, patch)
    return save_model(model, tokenizer, out_dir)


def patch_dtype(patch: Patch) -> torch.dtype:
    """The dtype most of the patch's tensors have: the one to load its model in."""
    # Most, not all: a model loaded in bfloat16 may keep a few modules in float32
    # (transformers' _keep_in_fp32_modules), and loading in bfloat16 reproduces that.
    counts = collections.Counter(t.dtype for t in patch.edited.values())
    return counts.most_common(1)[0][0] if counts else torch.float32


def load_model_folder(model_dir: Union[str, os.PathLike], dtype: torch.dtype):
    """`(model, tokenizer)` from a Hugging Face model folder, the model in `dtype` and eval mode."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise UserError(f"model folder {model_dir!r} does not exist; pass a folder written by save_pretrained")
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot load a causal LM and its tokenizer from {model_dir!r} "
                        f"({' '.join(str(exc).split())[:300]}); pass a folder written by save_pretrained") from None
    return model.eval(), tokenizer


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    command = patch_apply if args.patch_command == "apply" else patch_revert
    out = command(args.model, args.patch, args.out, dtype=args.dtype)
    print(f"wrote {out}")
    return 0
