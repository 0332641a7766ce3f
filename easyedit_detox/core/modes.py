"""A model's train/eval mode, set for a block and put back module by module."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def eval_mode(model):
    """The model in eval mode (dropout off) inside the block; each module's own mode restored after."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
