"""The GPU check script runs end to end (here on the CPU, tiny), so it is ready when a GPU is lent."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_gpu_check_runs_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--tiny", "--device", "cpu",
                           "--json", str(out)], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DINM edit, layer 4 (middle)" in proc.stdout and "one SafeEdit case" in proc.stdout
    import json

    figures = json.loads(out.read_text())["figures"]
    assert {f["strategy"] for f in figures} == {"full", "cached", "straightforward", "ours"}
    assert all(f["seconds"] > 0 for f in figures)
