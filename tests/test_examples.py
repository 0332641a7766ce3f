"""The example scripts the README points at run as written."""

import os
import subprocess
import sys

import pytest
import yaml

from easyedit_detox.toy import sample_path
from test_methods import method_yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, *args, cwd):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args], capture_output=True,
                         text=True, cwd=cwd, timeout=600, env=dict(os.environ, EASYEDIT_DETOX_CACHE=str(cwd)))
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_evaluate_any_method_with_easyeditors_ft(tiny_llama_dir, tmp_path):
    stdout = run_example("evaluate_any_method.py", "--hparams", method_yaml(tmp_path, "FT", "llama", tiny_llama_dir),
                         "--data", sample_path(), "--out", str(tmp_path / "out"), "--limit", "1",
                         "--general-cases", "0", cwd=tmp_path)
    assert "method: FT" in stdout and "| DS |" in stdout


@pytest.mark.git_only("EasyEdit-git's BaseEditor runs on the CPU; PyPI's moves the model to cuda:{device}")
def test_edit_with_baseeditor_undoes_and_keeps(tiny_gpt2_dir, tmp_path):
    with open(os.path.join(ROOT, "hparams", "DINM", "gpt2-xl.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(device="cpu", max_length=1024, num_steps=2, lr=1e-2)
    (tmp_path / "h.yaml").write_text(yaml.safe_dump(raw))
    args = ["--hparams", str(tmp_path / "h.yaml"), "--model", tiny_gpt2_dir, "--record", "1"]
    assert "none (restored)" in run_example("edit_with_baseeditor.py", *args, cwd=tmp_path)
    assert "c_proj" in run_example("edit_with_baseeditor.py", *args, "--keep-edit", cwd=tmp_path)
