"""DINM registered with easyeditor like a built-in method, whatever the import order, and the policy next to EasyEdit's DINM."""

import logging
import os
import subprocess
import sys
import types

import pytest

import easyedit_detox
from easyedit_detox import DINMHyperParams, apply_dinm_to_model
from easyedit_detox.methods.registration import register_into
from easyedit_detox.core.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(code, **env):
    """Run `code` in a fresh interpreter (PYTHONPATH as this one's) and return its stdout lines."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, **env}, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()


def test_import_registers_dinm_in_the_dict_baseeditor_reads():
    from easyeditor.editors import editor
    from easyeditor.util.alg_dict import ALG_DICT

    assert ALG_DICT["DINM"] is apply_dinm_to_model and ALG_DICT["DINM-detox"] is apply_dinm_to_model
    assert editor.ALG_DICT is ALG_DICT  # BaseEditor's module sees the same dict object
    assert easyedit_detox.REGISTRATION in ("added", "replaced")


def test_from_easyeditor_import_works_like_builtin_methods():
    from easyeditor import DINMHyperParams as H, apply_dinm_to_model as f

    assert H is DINMHyperParams and f is apply_dinm_to_model


def test_registering_again_is_harmless():
    from easyeditor.util.alg_dict import ALG_DICT

    before = dict(ALG_DICT)
    assert easyedit_detox.register() in ("added", "replaced")  # the first registration's record is kept
    assert dict(ALG_DICT) == before


def test_importing_a_submodule_does_not_import_easyeditor():
    code = ("import sys\nimport easyedit_detox.evaluation.metrics\nfrom easyedit_detox.report import compare\n"
            "import easyedit_detox\nprint('easyeditor' in sys.modules, 'REGISTRATION' in vars(easyedit_detox))")
    assert run_python(code) == ["False", "False"]


def test_dinm_imports_without_easyeditor_and_its_hparams_class_joins_easyeditors_when_registered():
    code = ("import sys\nfrom easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model\n"
            "print('easyeditor' in sys.modules)\n"
            "from easyeditor.util.hparams import HyperParams\n"
            "h = DINMHyperParams.from_hparams('hparams/DINM/llama-7b.yaml')\n"
            "print(issubclass(DINMHyperParams, HyperParams), isinstance(h, HyperParams), h.lr)")
    assert run_python(code) == ["False", "True", "True", "0.0005"]


IMPORT_ORDERS = [
    # (what runs first, in a fresh interpreter); then easyeditor's ALG_DICT is read
    "import easyedit_detox",
    "import easyedit_detox.core.errors\nimport easyedit_detox",  # the order that once left DINM out
    "import easyedit_detox.evaluation.metrics",
    "import easyeditor\nimport easyedit_detox.core.errors",  # easyeditor first: registers at once
    "from easyeditor import BaseEditor\nimport easyedit_detox",
]


def run_pythons(codes):
    """`run_python` for each of `codes`, the interpreters running at the same time (each imports easyeditor)."""
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT) for code in codes]
    outs = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        outs.append(stdout.split())
    return outs


def test_our_methods_are_registered_whatever_the_import_order():
    tail = ("\nfrom easyeditor.util.alg_dict import ALG_DICT\nimport easyedit_detox\n"
            "from easyedit_detox.dinm import apply_dinm_to_model\n"
            "from easyedit_detox.methods import dpo, profs, sft\n"
            "print(ALG_DICT.get('DINM') is apply_dinm_to_model, ALG_DICT.get('DINM-detox') is apply_dinm_to_model,"
            " vars(easyedit_detox).get('REGISTRATION'))\n"
            "print(easyedit_detox.register())\n"  # idempotent: the first registration's record stays
            "print(ALG_DICT.get('ProFS') is profs.apply_profs_to_model, ALG_DICT.get('SFT') is sft.apply_sft_to_model,"
            " ALG_DICT.get('DPO') is dpo.apply_dpo_to_model)")
    for first, out in zip(IMPORT_ORDERS, run_pythons([first + tail for first in IMPORT_ORDERS])):
        assert out[:2] == ["True", "True"] and out[2] in ("added", "replaced") and out[3] == out[2], first
        assert out[4:] == ["True", "True", "True"], first


def test_reading_registration_registers_and_register_can_be_called_later():
    code = ("import easyedit_detox\nfrom easyeditor.util.alg_dict import ALG_DICT\n"
            "print(easyedit_detox.REGISTRATION, ALG_DICT['DINM'] is easyedit_detox.apply_dinm_to_model)")
    assert run_python(code)[1] == "True"
    code = ("import sys, easyedit_detox.evaluation.metrics, easyedit_detox\n"
            "print('easyeditor' in sys.modules)\n"
            "print(easyedit_detox.REGISTRATION)\n"  # reading it imports easyeditor, which registers
            "print(easyedit_detox.register())\n"
            "from easyeditor import DINMHyperParams\nprint(DINMHyperParams is easyedit_detox.DINMHyperParams)")
    out = run_python(code)
    assert out[0] == "False" and out[1] in ("added", "replaced") and out[2] == out[1] and out[3] == "True"


def test_importing_leaves_the_callers_logging_as_it_was():
    """easyeditor's import calls logging.basicConfig(level=INFO); through this package it changes nothing."""
    code = ("import logging\nroot = logging.getLogger()\nbefore = (root.level, list(root.handlers))\n"
            "import easyedit_detox\neasyedit_detox.REGISTRATION\n"  # imports easyeditor
            "from easyedit_detox.easyedit.upstream import easyeditor\neasyeditor()\n"
            "import sys\nprint('easyeditor' in sys.modules, (root.level, list(root.handlers)) == before, root.level)")
    assert run_python(code) == ["True", "True", str(logging.WARNING)]


def native_dinm(*args, **kwargs):
    """Stands in for EasyEdit-git's apply_dinm_to_model."""


class NativeDINMHyperParams:
    """Stands in for EasyEdit-git's DINMHyperParams."""


def stand_in_easyeditor():
    alg_dict = {"ROME": object(), "DINM": native_dinm}
    module = types.SimpleNamespace(DINMHyperParams=NativeDINMHyperParams, apply_dinm_to_model=native_dinm,
                                   __all__=["DINMHyperParams", "apply_dinm_to_model"])
    return alg_dict, module


def test_existing_dinm_is_replaced_by_default_and_the_warning_names_each_replacement(caplog, monkeypatch):
    monkeypatch.delenv("EASYEDIT_DETOX_DINM", raising=False)
    alg_dict, module = stand_in_easyeditor()
    with caplog.at_level(logging.WARNING):
        result = register_into(alg_dict, module, apply_dinm_to_model, DINMHyperParams)
    assert result == "replaced" and len(result.replaced) == 3
    assert alg_dict["DINM"] is apply_dinm_to_model and alg_dict["DINM-EasyEdit"] is native_dinm
    assert alg_dict["DINM-detox"] is apply_dinm_to_model
    assert module.DINMHyperParams is DINMHyperParams and module.EasyEditDINMHyperParams is NativeDINMHyperParams
    assert module.apply_dinm_to_model is apply_dinm_to_model and module.EasyEditapply_dinm_to_model is native_dinm
    for needle in ("ALG_DICT['DINM'] (now ALG_DICT['DINM-EasyEdit'])", "easyeditor.DINMHyperParams",
                   "easyeditor.apply_dinm_to_model", "EASYEDIT_DETOX_DINM=easyedit"):
        assert needle in caplog.text


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_preferring_easyedit_leaves_easyeditor_untouched(caplog, monkeypatch, how):
    alg_dict, module = stand_in_easyeditor()
    before_dict, before_module = dict(alg_dict), dict(vars(module))
    kwargs = {}
    if how == "environment":
        monkeypatch.setenv("EASYEDIT_DETOX_DINM", "easyedit")
    else:
        kwargs = {"prefer": "easyedit"}
    with caplog.at_level(logging.WARNING):
        assert register_into(alg_dict, module, apply_dinm_to_model, DINMHyperParams, **kwargs) == "untouched"
    assert alg_dict == before_dict and vars(module) == before_module
    assert caplog.text == ""


def test_bad_preference_is_refused():
    with pytest.raises(UserError, match="use 'ours'"):
        register_into({}, types.SimpleNamespace(), apply_dinm_to_model, DINMHyperParams, prefer="theirs")


def test_missing_easyeditor_gives_install_instructions():
    code = "import sys; sys.modules['easyeditor'] = None\nimport easyedit_detox\nprint('imported')\n"
    out = subprocess.run([sys.executable, "-c", code + "easyedit_detox.REGISTRATION"], capture_output=True, text=True)
    # The package imports without easyeditor (compare, the metrics); what needs easyeditor says how to install it.
    assert out.returncode != 0 and out.stdout.split() == ["imported"]
    assert "ImportError" in out.stderr and "pip install --no-deps easyeditor==0.0.1.dev0" in out.stderr
