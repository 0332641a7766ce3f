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


def test_cli_benchmark_measures_help_and_compare(tmp_path):
    from test_compare import summary, write_run

    runs = [write_run(tmp_path, "a", summary()), write_run(tmp_path, "b", summary(method="FT"))]
    stdout, figures = run_benchmark("bench_cli.py", "--repeat", "1", "--runs", *runs, tmp_path=tmp_path)
    assert set(figures["seconds"]) == {"python -c pass (baseline)", "python -c 'import torch'", "easyedit-detox --help",
                                       "easyedit-detox evaluate --help", "easyedit-detox compare (2 runs)"}
    assert all(s > 0 for s in figures["seconds"].values()) and "x python start" in stdout
