"""EasyEdit's MEND (a trained hypernetwork edits `inner_params`); train one with `easyedit-detox train-mend`."""

from __future__ import annotations

from .base import MethodAdapter, register_adapter


def fresh_executor_fn(fn, model, tok, hparams):
    """`fn`, except that a stateful executor's bound method gets a fresh executor, set up for `model`.

    MEND's (and SERAC's) executors in ALG_DICT are singletons that keep the first model they saw,
    hook it, and (PyPI's) leave the hypernetwork in training mode, so that each edit would first
    update its trained normalisation statistics with its own activations. A fresh executor per edit
    keeps edits independent of each other (its hooks go with the edit's other traces); eval mode is
    what EasyEdit from git sets.
    """
    owner = getattr(fn, "__self__", None)
    if owner is None or not hasattr(owner, "is_init"):
        return fn
    executor = type(owner)()
    if hasattr(executor, "init_model"):
        executor.init_model(model, tok, hparams)
        alg = getattr(executor, "alg", None)
        if alg is not None:
            alg.eval()
    return getattr(executor, fn.__name__)


class FreshExecutorAdapter(MethodAdapter):
    """A method whose ALG_DICT entry is a stateful executor's bound method: each edit gets a fresh executor."""

    def bind(self, fn, model, tok, hparams):
        return fresh_executor_fn(fn, model, tok, hparams)


@register_adapter
class MENDAdapter(FreshExecutorAdapter):
    """MEND writes exactly its hparams' `inner_params`."""

    alg_name = "MEND"
    hparams_class_name = "MENDHyperParams"

    def predicted_writes(self, hparams, model, memo):
        inner = set(hparams.inner_params)
        return [n for n, _ in model.named_parameters() if n in inner]


@register_adapter
class SERACAdapter(FreshExecutorAdapter):
    """SERAC keeps a trained classifier and counterfactual model beside the base model (a singleton executor)."""

    alg_name = "SERAC"
    hparams_class_name = "SERACHparams"
