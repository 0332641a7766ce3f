"""The hparams of the methods this package implements besides DINM (ProFS, SFT, DPO): EasyEdit-style YAMLs, checked.

Each class is a dataclass whose fields are the YAML's keys. Loading reports a wrong `alg_name`, unknown
keys (a typo is named, not silently defaulted) and missing ones; like `DINMHyperParams`, the class
becomes a subclass of easyeditor's `HyperParams` when the package registers with easyeditor.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Tuple

from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.core.files import read_yaml, yaml_path
from easyedit_detox.dinm.hparams import EasyEditHyperParams


class YamlHyperParams(EasyEditHyperParams):
    """Base of a dataclass of hparams loaded from an EasyEdit-style YAML with `from_hparams`."""

    ALG_NAMES: Tuple[str, ...] = ()
    FLOAT_KEYS: Tuple[str, ...] = ()  # YAML 1.1 reads 5e-4 (no dot) as a string: these become floats
    EXAMPLE = ""  # a shipped YAML to point at when keys are missing

    @classmethod
    def from_hparams(cls, hparams_name_or_path: str):
        """Load and check a YAML (`.yaml` is added when missing), as EasyEdit's classes do."""
        path = yaml_path(hparams_name_or_path)
        return cls.from_dict(read_yaml(path), source=path)

    @classmethod
    def from_dict(cls, config: Dict[str, Any], source: str = "hparams"):
        """Build from a plain dict with the YAML's keys, reporting a wrong alg_name, missing and unknown keys."""
        config = dict(config)
        alg = config.get("alg_name")
        if alg not in cls.ALG_NAMES:
            raise HyperParamsError(f"{source}: alg_name is {alg!r}, but {cls.__name__} loads only alg_name: "
                                   f"{' or '.join(cls.ALG_NAMES)}; use the hparams class of {alg!r} for that file")
        fields = dataclasses.fields(cls)
        known = {f.name for f in fields}
        unknown = sorted(set(config) - known)
        if unknown:
            raise HyperParamsError(f"{source}: unknown key(s) {unknown}; valid keys are {sorted(known)}")
        required = {f.name for f in fields
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - set(config))
        if missing:
            raise HyperParamsError(f"{source}: missing key(s) {missing}; see {cls.EXAMPLE or 'the shipped YAMLs'}")
        for key in cls.FLOAT_KEYS:
            value = config.get(key)
            if isinstance(value, str):
                try:
                    config[key] = float(value)
                except ValueError:
                    raise HyperParamsError(f"{source}: {key} is {value!r}; it must be a number") from None
        return cls(**config)

    def check(self, name: str, ok: bool, expected: str) -> None:
        """Raise HyperParamsError naming key `name` unless `ok`."""
        if not ok:
            raise HyperParamsError(f"hparams key {name!r} is {getattr(self, name)!r}; it must be {expected}")


def is_int(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """An int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
