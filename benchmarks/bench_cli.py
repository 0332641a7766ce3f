"""How fast the command line answers when no model is needed: `--help` and `compare`, against Python's own start.

    python benchmarks/bench_cli.py [--repeat 5] [--runs DIR DIR] [--json out.json]

`--help` and `compare` import neither easyeditor, torch nor transformers (tests/test_cli.py checks what they
import); this measures what that buys, as the median wall time of `--repeat` fresh processes each, beside two
baselines measured in the same run: a bare `python -c pass` and `python -c "import torch"` (the least a command
that touched torch would pay). `compare` reads two results folders that a toy evaluation writes first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import machine, markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def median_seconds(command, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, cwd=ROOT, timeout=600)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def toy_runs(folder: str):
    """Two small results folders (DINM on the embedded toy at two learning rates) for `compare` to read."""
    from easyedit_detox.commands.demo import asset

    import yaml

    with open(asset("dinm-toy.yaml"), encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    runs = []
    for lr in (1e-2, 3e-3):
        raw.update(model_name=asset("toy_model"), lr=lr)
        path = os.path.join(folder, f"dinm-{lr}.yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(raw, f)
        out = os.path.join(folder, f"run-{lr}")
        subprocess.run([sys.executable, "-m", "easyedit_detox", "evaluate", "--hparams", path, "--data",
                        os.path.join(ROOT, "easyedit_detox", "data", "safeedit_test_sample.json"), "--out", out,
                        "--cases", "0,1", "--general-cases", "0", "--no-cache", "--no-progress"],
                       check=True, capture_output=True, cwd=ROOT, timeout=600)
        runs.append(out)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="fresh processes per command (median)")
    parser.add_argument("--runs", nargs="+", metavar="DIR",
                        help="results folders for compare (default: two written by a toy evaluation first)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        runs = args.runs or toy_runs(folder)
        cli = [sys.executable, "-m", "easyedit_detox"]
        rows = [("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
                ("python -c 'import torch'", [sys.executable, "-c", "import torch"]),
                ("easyedit-detox --help", cli + ["--help"]),
                ("easyedit-detox evaluate --help", cli + ["evaluate", "--help"]),
                ("easyedit-detox compare (2 runs)", cli + ["compare", *runs])]
        figures = {name: median_seconds(command, args.repeat) for name, command in rows}
    base = figures["python -c pass (baseline)"]
    print(f"median of {args.repeat} fresh processes each; machine: {machine()}")
    print(markdown_table(["command", "seconds", "x python start"],
                         [(name, f"{s:.3f}", f"{s / base:.1f}") for name, s in figures.items()]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"repeat": args.repeat, "seconds": figures, "machine": machine()}, f, indent=1)


if __name__ == "__main__":
    main()
