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


def run_benchmark(name, *args, tmp_path):
    out = tmp_path / f"{name}.json"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", name), *args, "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    return proc.stdout, json.loads(out.read_text())


def test_scale_benchmark_runs_tiny(tmp_path):
    stdout, figures = run_benchmark("bench_scale.py", "--sizes", "3,6", "--warmup", "0", "--max-length", "64",
                                    "--max-output-length", "4", tmp_path=tmp_path)
    assert "seconds per case at 6 / at 3" in stdout
    assert [r["cases"] for r in figures["runs"]] == [3, 6] and figures["ratio"] > 0


def test_eval_benchmark_runs_tiny(tmp_path):
    stdout, figures = run_benchmark("bench_eval.py", "--cases", "2", "--max-length", "64", "--max-output-length", "4",
                                    tmp_path=tmp_path)
    assert figures["same_responses"] is True and figures["second_method"]["vanilla_generated"] == 0
