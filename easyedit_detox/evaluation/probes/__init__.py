"""Probes: SafeEdit's five inputs and the general-performance probes (KQA, CSum, over-refusal).

Every module in this folder is imported here, so a new probe file registers itself.
"""

import importlib
import pkgutil

from .base import (GENERAL_PROBES, PROBES, GeneralProbe, Item, Probe, ProbeContext, State, general_line,
                   register_probe)

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["GENERAL_PROBES", "PROBES", "GeneralProbe", "Item", "Probe", "ProbeContext", "State", "general_line",
           "register_probe"]
