"""The package's layers (.importlinter): every import points down, and the check catches one that points up."""

import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lint_imports(root):
    """Run import-linter's command on the package under `root`; returns (exit code, output)."""
    script = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([script, os.path.join(root, ".importlinter"), "--no-cache", "--no-logo"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=300)
    return done.returncode, done.stdout + done.stderr


def test_layers_only_point_down():
    code, out = lint_imports(ROOT)
    assert code == 0, out
    assert "Contracts: 1 kept, 0 broken." in out


def test_an_upward_import_breaks_the_contract(tmp_path):
    copy = tmp_path / "repo"
    shutil.copytree(os.path.join(ROOT, "easyedit_detox"), copy / "easyedit_detox",
                    ignore=shutil.ignore_patterns("__pycache__", "*.json", "demo_assets"))
    shutil.copy(os.path.join(ROOT, ".importlinter"), copy / ".importlinter")
    with open(copy / "easyedit_detox" / "core" / "files.py", "a") as f:
        f.write("\n\ndef _upward():\n    from easyedit_detox.evaluation import runner  # a layer above core\n")
    code, out = lint_imports(str(copy))
    assert code != 0
    assert "easyedit_detox.core is not allowed to import easyedit_detox.evaluation" in out
    assert "easyedit_detox.core.files -> easyedit_detox.evaluation.runner" in out
