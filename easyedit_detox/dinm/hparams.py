"""DINM hyperparameters: the keys of EasyEdit's published DINM YAMLs, validated on load."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Union

from easyedit_detox.core.devices import parse_device
from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.core.files import read_yaml, yaml_path

ALG_NAME = "DINM"
# "DINM-detox" names this package's DINM even where EasyEdit's own DINM keeps the name "DINM".
ALG_NAMES = (ALG_NAME, "DINM-detox")

# Keys a YAML may leave out, with their defaults. Everything else is required, so a typo in a
# key name is reported instead of silently falling back to a default.
OPTIONAL_KEYS = {"model_parallel": False, "constraint_grad": True}
FLOAT_KEYS = ("lr", "weight_decay", "kl_factor", "norm_constraint")


class EasyEditHyperParams:
    """Stands in for easyeditor's `HyperParams` base until easyeditor is imported.

    This module imports without easyeditor. Registering with easyeditor (methods/registration.py, run the moment
    easyeditor is imported) makes `DINMHyperParams` a subclass of easyeditor's own `HyperParams` in place of this
    class, so `isinstance(h, HyperParams)` holds wherever EasyEdit's code could ask.
    """


def join_easyedit_base(cls: type, base: type) -> None:
    """Make `cls` (which derives from `EasyEditHyperParams`) a subclass of easyeditor's `base`; idempotent."""
    for ancestor in cls.__mro__:
        if ancestor.__bases__ == (EasyEditHyperParams,):
            ancestor.__bases__ = (base,)


@dataclass
class DINMHyperParams(EasyEditHyperParams):
    """Settings of one DINM edit, loaded from an EasyEdit-style YAML with `from_hparams`."""

    # Model
    model_name: str
    model_class: str
    tokenizer_class: str
    device: Union[int, str]
    suffix_system_prompt: str
    # Method
    layers: List[int]
    num_steps: int
    batch_size: int
    max_length: int
    max_output_length: int
    lr: float
    weight_decay: float
    kl_factor: float
    norm_constraint: Union[float, bool]
    # Module templates
    rewrite_module_tmp: str
    layer_module_tmp: str
    mlp_module_tmp: str
    attn_module_tmp: str
    ln_f_module: str
    lm_head_module: str
    alg_name: str = ALG_NAME
    model_parallel: bool = False
    # Ours: False reproduces EasyEdit's DINM, whose KL term carries no gradient.
    constraint_grad: bool = True

    def __post_init__(self):
        validate(self)

    @classmethod
    def from_hparams(cls, hparams_name_or_path: str) -> "DINMHyperParams":
        """Load and validate a DINM YAML (`.yaml` is added when missing), as EasyEdit's classes do."""
        path = yaml_path(hparams_name_or_path)
        config = read_yaml(path)
        return cls.from_dict(config, source=path)

    @classmethod
    def from_dict(cls, config: Dict[str, Any], source: str = "hparams") -> "DINMHyperParams":
        """Build from a plain dict with the YAML's keys, reporting missing and unknown keys."""
        config = dict(config)
        alg = config.get("alg_name")
        if alg not in ALG_NAMES:
            raise HyperParamsError(f"{source}: alg_name is {alg!r}, but DINMHyperParams loads only "
                                   f"alg_name: {' or '.join(ALG_NAMES)}; use the hparams class of {alg!r} for that file")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise HyperParamsError(f"{source}: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        missing = sorted(known - set(config) - set(OPTIONAL_KEYS) - {"alg_name"})
        if missing:
            raise HyperParamsError(f"{source}: missing key(s) {missing}; every DINM YAML needs them "
                                   f"(see hparams/DINM/llama-7b.yaml)")
        # YAML 1.1 reads 5e-4 (no dot) as a string. EasyEdit's construct_float_from_scientific_notation
        # converts every such string, turning layers: "3" or a model folder "7" into floats too;
        # convert the float-valued keys only.
        for key in FLOAT_KEYS:
            value = config.get(key)
            if isinstance(value, str):
                try:
                    config[key] = float(value)
                except ValueError:
                    pass  # validate() reports it with the key's name
        return cls(**config)

    def edit_layers(self) -> Optional[List[int]]:
        """The fixed layers to edit, or None when DINM locates the toxic layer per request."""
        return list(self.layers) if self.layers else None


def _fail(name: str, value: Any, expected: str) -> None:
    raise HyperParamsError(f"hparams key {name!r} is {value!r}; it must be {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(h: DINMHyperParams) -> None:
    """Raise HyperParamsError naming the first key whose value DINM cannot use."""
    if h.alg_name not in ALG_NAMES:
        _fail("alg_name", h.alg_name, " or ".join(repr(a) for a in ALG_NAMES))
    if not _is_int(h.num_steps) or h.num_steps < 1:
        _fail("num_steps", h.num_steps, "an integer >= 1")
    if not _is_number(h.lr) or h.lr <= 0:
        _fail("lr", h.lr, "a number > 0 (e.g. 5e-4)")
    if not _is_number(h.weight_decay) or h.weight_decay < 0:
        _fail("weight_decay", h.weight_decay, "a number >= 0")
    if not _is_number(h.kl_factor) or h.kl_factor < 0:
        _fail("kl_factor", h.kl_factor, "a number >= 0")
    if h.norm_constraint is True or not (h.norm_constraint is False or (_is_number(h.norm_constraint)
                                                                         and h.norm_constraint > 0)):
        _fail("norm_constraint", h.norm_constraint, "false (no clamp) or a number > 0")
    if not isinstance(h.layers, (list, tuple)) or not all(_is_int(x) for x in h.layers):
        _fail("layers", h.layers, "a list of layer indices ([] to locate the toxic layer per request)")
    for key in ("batch_size", "max_length", "max_output_length"):
        value = getattr(h, key)
        if not _is_int(value) or value < 1:
            _fail(key, value, "an integer >= 1")
    for key in ("rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp", "attn_module_tmp"):
        value = getattr(h, key)
        if not isinstance(value, str) or "{}" not in value:
            _fail(key, value, "a module name template with '{}' for the layer index")
    for key in ("ln_f_module", "lm_head_module"):
        if not isinstance(getattr(h, key), str):
            _fail(key, getattr(h, key), "a string")
    if not isinstance(h.suffix_system_prompt, str):
        _fail("suffix_system_prompt", h.suffix_system_prompt, "a string")
    if not isinstance(h.model_parallel, bool):
        _fail("model_parallel", h.model_parallel, "true or false")
    if not isinstance(h.constraint_grad, bool):
        _fail("constraint_grad", h.constraint_grad, "true or false")
    parse_device(h.device)
