"""DINM registered with easyeditor like a built-in method, and the policy next to EasyEdit's own DINM."""

import logging
import subprocess
import sys

import pytest

import easyedit_detox
from easyedit_detox import DINMHyperParams, apply_dinm_to_model
from easyedit_detox.bridge.registration import register


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
    assert register(apply_dinm_to_model, ALG_DICT) == "kept"
    assert dict(ALG_DICT) == before


def native_dinm(*args, **kwargs):
    """Stands in for EasyEdit-git's apply_dinm_to_model."""


def test_existing_dinm_is_replaced_by_default_and_kept_reachable(caplog, monkeypatch):
    monkeypatch.delenv("EASYEDIT_DETOX_DINM", raising=False)
    stand_in = {"ROME": object(), "DINM": native_dinm}
    with caplog.at_level(logging.WARNING):
        assert register(apply_dinm_to_model, stand_in) == "replaced"
    assert stand_in["DINM"] is apply_dinm_to_model and stand_in["DINM-EasyEdit"] is native_dinm
    assert stand_in["DINM-detox"] is apply_dinm_to_model
    assert "already has a DINM method" in caplog.text and "DINM-EasyEdit" in caplog.text


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_existing_dinm_can_be_preferred(caplog, monkeypatch, how):
    stand_in = {"DINM": native_dinm}
    if how == "environment":
        monkeypatch.setenv("EASYEDIT_DETOX_DINM", "easyedit")
        kwargs = {}
    else:
        kwargs = {"prefer": "easyedit"}
    with caplog.at_level(logging.WARNING):
        assert register(apply_dinm_to_model, stand_in, **kwargs) == "deferred"
    assert stand_in["DINM"] is native_dinm and stand_in["DINM-detox"] is apply_dinm_to_model
    assert "keeping it under 'DINM'" in caplog.text


def test_bad_preference_is_refused():
    with pytest.raises(ValueError, match="use 'ours' or 'easyedit'"):
        register(apply_dinm_to_model, {}, prefer="theirs")


def test_missing_easyeditor_gives_install_instructions():
    code = "import sys; sys.modules['easyeditor'] = None\nimport easyedit_detox"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode != 0
    assert "ImportError" in out.stderr and "pip install --no-deps easyeditor==0.0.1.dev0" in out.stderr
