"""Seconds and peak memory of one DINM edit: the cached path against the straightforward one.

    python benchmarks/bench_edit.py [--edits 3] [--max-length 512] [--json out.json]

The straightforward path runs the whole model on the edit and constraint sequences every step;
the cached path (the default) starts each step at the edited layer. Each (strategy, layer) runs
in its own process so that its peak resident memory can be read. The edited layer is fixed (as
`layers: [L]` in the hparams) at the bottom, the middle, three quarters of the depth and the top.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

from common import SEVEN_B_SHAPE, build_model, machine, markdown_table, peak_rss_mb, records, request, shape_text


def worker(args) -> None:
    import torch

    from easyedit_detox import DINMHyperParams, apply_dinm_to_model
    from easyedit_detox.core.weights import write_back

    torch.manual_seed(0)
    model, tok = build_model(SEVEN_B_SHAPE)
    h = DINMHyperParams(alg_name="DINM", model_name="bench", model_class="LlamaForCausalLM",
                        tokenizer_class="AutoTokenizer", device="cpu", suffix_system_prompt="", layers=[args.layer],
                        num_steps=10, batch_size=1, max_length=args.max_length, max_output_length=64, lr=5e-4,
                        weight_decay=0.0, kl_factor=0.1, norm_constraint=False,
                        rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight", layer_module_tmp="model.layers.{}",
                        mlp_module_tmp="model.layers.{}.mlp", attn_module_tmp="model.layers.{}.self_attn",
                        ln_f_module="model.norm", lm_head_module="lm_head")
    reqs = [request(r) for r in records()[: args.edits + 1]]
    baseline = peak_rss_mb()
    times = []
    for i, req in enumerate(reqs):
        start = time.perf_counter()
        _, weights_copy = apply_dinm_to_model(model, tok, [req], h, return_orig_weights=True, keep_original_weight=True,
                                              strategy=args.strategy)
        elapsed = time.perf_counter() - start
        write_back(model, weights_copy)
        if i > 0:  # the first edit warms up the allocator and kernels
            times.append(elapsed)
    print(json.dumps({"seconds": statistics.median(times), "peak_extra_mb": peak_rss_mb() - baseline}))


def run(strategy: str, layer: int, args) -> dict:
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--strategy", strategy, "--layer", str(layer),
           "--edits", str(args.edits), "--max-length", str(args.max_length)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"worker failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--edits", type=int, default=2, help="timed edits per configuration (after one warm-up)")
    parser.add_argument("--max-length", type=int, default=512, help="hparams max_length (prompt cut from the left)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--strategy", default="cached", help=argparse.SUPPRESS)
    parser.add_argument("--layer", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    n = SEVEN_B_SHAPE["num_layers"]
    positions = [("bottom", 0), ("middle", n // 2), ("three quarters", 3 * n // 4), ("top", n - 1)]
    rows, figures = [], []
    for label, layer in positions:
        full, cached = run("full", layer, args), run("cached", layer, args)
        speedup = full["seconds"] / cached["seconds"]
        mem_ratio = cached["peak_extra_mb"] / max(full["peak_extra_mb"], 1e-9)
        figures.append({"position": label, "layer": layer, "full": full, "cached": cached, "speedup": speedup,
                        "peak_memory_ratio": mem_ratio})
        rows.append([f"{label} ({layer})", f"{full['seconds']:.2f}", f"{cached['seconds']:.2f}", f"{speedup:.2f}x",
                     f"{full['peak_extra_mb']:.0f}", f"{cached['peak_extra_mb']:.0f}", f"{mem_ratio:.2f}"])
        print(f"layer {layer}: full {full['seconds']:.2f}s, cached {cached['seconds']:.2f}s ({speedup:.2f}x)", flush=True)
    print()
    print(f"DINM edit, 10 steps, max_length {args.max_length}, SafeEdit records 1..{args.edits} (record 0 warms up)")
    print(f"model: {shape_text(SEVEN_B_SHAPE)}, float32, random weights")
    print(f"machine: {machine()}")
    print(markdown_table(["edited layer", "straightforward s/edit", "cached s/edit", "speed-up",
                          "straightforward peak MiB", "cached peak MiB", "memory ratio"], rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "model": shape_text(SEVEN_B_SHAPE), "figures": figures}, f, indent=2)


if __name__ == "__main__":
    main()
