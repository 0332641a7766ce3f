"""ProFS (Uppaal et al., ICLR 2025, arXiv:2405.13967): project a "toxic subspace" out of MLP output weights.

Training-free: from pairs of a safe and an unsafe text, forward passes only. For each edited layer l,
a text's embedding is the mean over its tokens (padding excluded) of decoder layer l's output (the
residual stream after layer l, before the final norm); with E+ and E- the safe and unsafe embeddings,
T = (E+ - E-) / 2, optionally centred by projecting out E+'s top right singular vector; P is the
projection onto T's top `top_k_ranks` right singular vectors, and the MLP output projection W
becomes (I - P) W (an nn.Linear, D x 4D) or W (I - P) (GPT-2's Conv1D, which stores the transpose).
All of it in float32. One request gives a rank-1 edit; many (the global protocol) ProFS as published.
Each request's `target_new` is the safe text and `ground_truth` the unsafe one, the texts alone.
"""

from __future__ import annotations

from copy import deepcopy
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Union

import torch
from torch import nn

from easyedit_detox.core.devices import input_device
from easyedit_detox.core.modes import eval_mode
from easyedit_detox.core.errors import HyperParamsError, RequestError
from .base import BATCH, MethodAdapter, register_adapter
from .yaml_hparams import YamlHyperParams, is_int


@dataclass
class ProFSHyperParams(YamlHyperParams):
    """Settings of a ProFS edit, loaded from an EasyEdit-style YAML with `from_hparams`."""

    ALG_NAMES = ("ProFS",)
    EXAMPLE = "hparams/ProFS/gpt2-medium.yaml"

    model_name: str
    device: Union[int, str]
    layers: List[int]
    top_k_ranks: int
    # Where decoder layer l is, and its MLP output projection, as EasyEdit's templates name them.
    layer_module_tmp: str
    rewrite_module_tmp: str
    alg_name: str = "ProFS"
    centering: bool = True
    max_length: int = 128
    batch_size: int = 16  # texts per forward pass (padding is excluded from the means)
    model_parallel: bool = False

    def __post_init__(self):
        self.check("alg_name", self.alg_name in self.ALG_NAMES, "'ProFS'")
        self.check("layers", isinstance(self.layers, (list, tuple)) and bool(self.layers)
                   and all(is_int(x) and x >= 0 for x in self.layers), "a non-empty list of layer indices")
        self.check("top_k_ranks", is_int(self.top_k_ranks) and self.top_k_ranks >= 1, "an integer >= 1")
        self.check("centering", isinstance(self.centering, bool), "true or false")
        self.check("max_length", is_int(self.max_length) and self.max_length >= 1, "an integer >= 1")
        self.check("batch_size", is_int(self.batch_size) and self.batch_size >= 1, "an integer >= 1")
        for key in ("layer_module_tmp", "rewrite_module_tmp"):
            self.check(key, isinstance(getattr(self, key), str) and "{}" in getattr(self, key),
                       "a module name with {} for the layer index, e.g. model.layers.{}.mlp.down_proj")


def _pairs(requests: List[Dict[str, Any]]):
    safe, unsafe = [], []
    for i, request in enumerate(requests):
        for key, out in (("target_new", safe), ("ground_truth", unsafe)):
            text = request.get(key)
            if not isinstance(text, str) or not text.strip():
                raise RequestError(f"ProFS request {i} has no {key!r} text (the {'safe' if out is safe else 'unsafe'} "
                                   "response of the preference pair); every request needs both")
            out.append(text)
    return safe, unsafe


def _output_tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


@torch.no_grad()
def layer_embeddings(model, tok, texts: List[str], layers: List[int], hparams: ProFSHyperParams) -> Dict[int, torch.Tensor]:
    """Per layer, the float32 N x D matrix of each text's mean decoder-layer output (padding excluded)."""
    device = input_device(model)
    modules = dict(model.named_modules())
    missing = [hparams.layer_module_tmp.format(l) for l in layers if hparams.layer_module_tmp.format(l) not in modules]
    if missing:
        raise HyperParamsError(f"hparams layer_module_tmp {hparams.layer_module_tmp!r}: the model has no module "
                               f"{missing[0]!r}; check layers and the template against model.named_modules()")
    sums: Dict[int, List[torch.Tensor]] = {l: [] for l in layers}
    captured: Dict[int, torch.Tensor] = {}
    hooks = [modules[hparams.layer_module_tmp.format(l)].register_forward_hook(
        lambda mod, args, output, l=l: captured.__setitem__(l, _output_tensor(output))) for l in layers]
    encoded = [tok(t, truncation=True, max_length=hparams.max_length)["input_ids"] for t in texts]
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    try:
        for start in range(0, len(encoded), hparams.batch_size):
            chunk = encoded[start:start + hparams.batch_size]
            width = max(len(ids) for ids in chunk)
            # Right padding: each text's tokens keep positions 0..n-1 and, attention being causal, never see a pad.
            ids = torch.tensor([x + [pad] * (width - len(x)) for x in chunk], device=device)
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in chunk], device=device)
            model(input_ids=ids, attention_mask=mask)
            weights = mask.to(torch.float32).unsqueeze(-1)
            for l in layers:
                hidden = captured[l].to(torch.float32)
                sums[l].append((hidden * weights).sum(dim=1) / weights.sum(dim=1))
    finally:
        for hook in hooks:
            hook.remove()
    return {l: torch.cat(parts) for l, parts in sums.items()}


def _top_right_vectors(matrix: torch.Tensor, k: int) -> torch.Tensor:
    """The top `k` right singular vectors of `matrix` as rows (fewer when its numerical rank is smaller)."""
    _, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    if s.numel() == 0 or s[0] <= 0:
        return vh[:0]
    tolerance = s[0] * max(matrix.shape) * torch.finfo(s.dtype).eps
    rank = int((s > tolerance).sum())
    return vh[:min(k, rank)]


def toxic_projection(safe: torch.Tensor, unsafe: torch.Tensor, top_k: int, centering: bool) -> torch.Tensor:
    """The D x D projection onto the toxic subspace of one layer's N x D safe and unsafe embeddings (float32)."""
    t = (safe - unsafe) / 2
    if centering:
        v1 = _top_right_vectors(safe, 1)
        if v1.shape[0]:
            v1 = v1[0]
            t = t - torch.outer(t @ v1, v1)
    basis = _top_right_vectors(t, top_k)
    return basis.T @ basis


def _project_out(module: nn.Module, projection: torch.Tensor) -> torch.Tensor:
    """`module`'s weight with the subspace removed from its output side; float32, on the weight's device."""
    weight = module.weight.detach().to(torch.float32)
    eye = torch.eye(projection.shape[0], dtype=torch.float32, device=weight.device)
    keep = eye - projection.to(weight.device)
    if isinstance(module, nn.Linear):  # out x in: the output side is the rows
        return keep @ weight
    if type(module).__name__ == "Conv1D":  # transformers' GPT-2 layer stores in x out
        return weight @ keep
    raise HyperParamsError(f"ProFS edits nn.Linear or GPT-2's Conv1D output projections; the module named by "
                           f"rewrite_module_tmp is a {type(module).__name__}")


def execute_profs(model, tok, requests: List[Dict[str, Any]], hparams: ProFSHyperParams) -> Dict[str, torch.Tensor]:
    """Project each layer's toxic subspace out of its MLP output weight, in place; returns the originals by name."""
    safe_texts, unsafe_texts = _pairs(requests)
    layers = list(hparams.layers)
    safe = layer_embeddings(model, tok, safe_texts, layers, hparams)
    unsafe = layer_embeddings(model, tok, unsafe_texts, layers, hparams)
    modules = dict(model.named_modules())
    originals: Dict[str, torch.Tensor] = {}
    for layer in layers:
        name = hparams.rewrite_module_tmp.format(layer)
        module = modules.get(name)
        if module is None or not hasattr(module, "weight"):
            raise HyperParamsError(f"hparams rewrite_module_tmp {hparams.rewrite_module_tmp!r}: the model has no "
                                   f"module {name!r} with a weight")
        projection = toxic_projection(safe[layer], unsafe[layer], hparams.top_k_ranks, hparams.centering)
        edited = _project_out(module, projection)
        originals[f"{name}.weight"] = module.weight.detach().clone()
        with torch.no_grad():
            module.weight.copy_(edited.to(module.weight.dtype))
    return originals


def apply_profs_to_model(model, tok, requests, hparams: ProFSHyperParams, copy: bool = False,
                         return_orig_weights: bool = False, keep_original_weight: bool = False, **kwargs):
    """Apply ProFS to `model` (EasyEdit's apply-function contract); returns (model, weights_copy)."""
    from easyedit_detox.easyedit.upstream import returns_originals

    requests = [requests] if isinstance(requests, dict) else list(requests)
    if copy:
        model = deepcopy(model)
    with eval_mode(model):  # the embeddings are read with dropout off, as the edited model answers
        originals = execute_profs(model, tok, requests, hparams)
    if isinstance(kwargs.get("report"), dict):
        kwargs["report"].update({"layers": list(hparams.layers), "pairs": len(requests)})
    return model, (originals if returns_originals(return_orig_weights, keep_original_weight) else {})


@register_adapter
class ProFSAdapter(MethodAdapter):
    """ProFS: this package's, training-free; many requests in one call (the global protocol) as published."""

    alg_name = "ProFS"
    returns_originals = True
    global_mode = BATCH
    ours = True

    def hparams_class(self, prefer=None) -> type:
        return ProFSHyperParams

    def apply_fn(self, prefer=None) -> Callable:
        return apply_profs_to_model

    def edit_info(self, hparams, report):
        return {k: report[k] for k in ("layers", "pairs") if k in report}
