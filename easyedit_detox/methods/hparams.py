"""Loading any EasyEdit hparams YAML with the hparams class of its `alg_name` (easyeditor's own, unchanged)."""

from __future__ import annotations

from typing import Optional

from easyedit_detox.core.errors import HyperParamsError
from easyedit_detox.core.files import read_yaml, yaml_path


def hparams_dict(hparams, leave_out=()) -> dict:
    """An hparams object's fields as JSON-ready plain data (keys sorted), without `leave_out`."""
    import dataclasses
    import json

    raw = dataclasses.asdict(hparams) if dataclasses.is_dataclass(hparams) else dict(vars(hparams))
    plain = {k: v for k, v in sorted(raw.items()) if k not in leave_out and not callable(v)}
    return json.loads(json.dumps(plain, default=str))


def hparams_class(alg_name: str, prefer: Optional[str] = None) -> type:
    """The hparams class for `alg_name`: its adapter's (this package's for its own methods, else easyeditor's)."""
    from .registry import adapter_for

    return adapter_for(alg_name, prefer).hparams_class(prefer)


def load_hparams(path: str, prefer: Optional[str] = None):
    """Load any EasyEdit hparams YAML with the class its `alg_name` names (easyeditor's own, except DINM)."""
    full = yaml_path(path)
    alg = read_yaml(full).get("alg_name")
    if not isinstance(alg, str):
        raise HyperParamsError(f"hparams file {full!r} has no alg_name; add e.g. `alg_name: DINM`")
    cls = hparams_class(alg, prefer)
    try:
        return cls.from_hparams(full)
    except HyperParamsError:
        raise
    except (TypeError, AssertionError, KeyError, ValueError) as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        raise HyperParamsError(f"hparams file {full!r} does not load as easyeditor's {cls.__name__}: "
                               f"{message}{_other_flavour_hint(full)}") from None


def _other_flavour_hint(path: str) -> str:
    """Where the same settings are in the installed EasyEdit's format (hparams/FT/pypi/... for PyPI's), if shipped."""
    import os

    from easyedit_detox.easyedit.upstream import GIT, flavour

    folder, name = os.path.split(os.path.abspath(path))
    if flavour() == GIT and os.path.basename(folder) == "pypi":
        other = os.path.join(os.path.dirname(folder), name)
        label = "EasyEdit from git"
    else:
        other = os.path.join(folder, "pypi", name)
        label = "PyPI's easyeditor 0.0.1.dev0"
    if os.path.isfile(other) and os.path.abspath(other) != os.path.abspath(path):
        return f"; the installed easyeditor is {label}: use {os.path.relpath(other)}"
    return ""


def apply_overrides(hparams, model: Optional[str] = None, device: Optional[str] = None) -> dict:
    """Point `hparams` at another checkpoint and/or device (the CLI's --model, --device); returns what changed."""
    import os

    from easyedit_detox.core.devices import parse_device
    from easyedit_detox.core.errors import UserError
    from easyedit_detox.easyedit.gguf_models import is_gguf_name

    changed: dict = {}
    if model is not None:
        if not is_gguf_name(model) and not os.path.isdir(os.path.expanduser(model)):
            raise UserError(f"--model {model!r}: no such folder; pass the folder that holds the checkpoint's "
                            "config.json (or a gguf:PACKAGE/FILE.gguf name)")
        previous = getattr(hparams, "model_name", None)
        hparams.model_name = model
        # Some EasyEdit hparams name the tokenizer apart; it follows the model where it named the same checkpoint.
        if getattr(hparams, "tokenizer_name", None) is not None and hparams.tokenizer_name == previous:
            hparams.tokenizer_name = model
        changed["model_name"] = model
    if device is not None:
        if getattr(hparams, "model_parallel", False):
            raise UserError(f"--device {device}: the hparams set model_parallel: true, which spreads the model "
                            "over every visible GPU; drop --device or set model_parallel: false")
        try:
            parse_device(device)
        except HyperParamsError:
            raise UserError(f"--device {device!r}: use cpu, cuda, cuda:N, N (a CUDA index) or auto") from None
        # EasyEdit's methods read an int as a CUDA index: keep that form where the user gave one.
        hparams.device = int(device) if device.strip().isdigit() else device.strip().lower()
        changed["device"] = hparams.device
    return changed
