"""Seconds per case of a whole SafeEdit evaluation at two sizes: does the run's own bookkeeping stay flat?

    python benchmarks/bench_scale.py [--sizes 135,1350] [--max-output-length 96] [--json out.json]

Synthetic SafeEdit files of each size are made from the bundled records (record i is bundled record
i mod 30 with id i and "Case i: " before every input, so no two cases share a vanilla input). A tiny
random LLaMA (2 layers, width 64) answers at full length (random weights never emit EOS) and DINM
edits one fixed layer in one step, so generation and edits stay cheap and the evaluation's own work
(judging, Fluency, degeneration, summaries, files) is a visible share of each case. The smaller size
is the baseline measured in the same run, after a short warm-up run: the figure that matters is the
ratio of seconds per case.
For comparison the benchmark also times what the previous runner did after every group of cases
(recompute the whole summary from all lines so far, word-splitting every response again), on the
lines of the larger run, and extrapolates it to the whole run from the measured per-case cost.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import tempfile
import time

from common import SUFFIX, machine, markdown_table, records

TINY = dict(num_layers=2, hidden=64, intermediate=128, heads=4)


def synthetic_file(folder: str, n: int) -> str:
    """A SafeEdit file of `n` cases made from the bundled records."""
    base = records()
    out = []
    for i in range(n):
        record = copy.deepcopy(base[i % len(base)])
        record["id"] = i
        record["adversarial prompt"] = f"Case {i}: " + record["adversarial prompt"]
        for key, value in list(record["generalization test"].items()):
            if key.startswith("test input"):
                record["generalization test"][key] = f"Case {i}: " + value
        out.append(record)
    path = os.path.join(folder, f"safeedit-{n}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(out, f)
    return path


def build():
    from transformers import LlamaConfig, LlamaForCausalLM

    from easyedit_detox.toy import train_tokenizer

    import torch

    tok = train_tokenizer("llama")
    config = LlamaConfig(vocab_size=len(tok), hidden_size=TINY["hidden"], intermediate_size=TINY["intermediate"],
                         num_hidden_layers=TINY["num_layers"], num_attention_heads=TINY["heads"],
                         num_key_value_heads=TINY["heads"], max_position_embeddings=2048,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval(), tok


def hparams(args):
    from easyedit_detox import DINMHyperParams

    return DINMHyperParams(
        alg_name="DINM", model_name="bench-scale", model_class="LlamaForCausalLM", tokenizer_class="AutoTokenizer",
        device="cpu", suffix_system_prompt=SUFFIX, layers=[1], num_steps=1, batch_size=1,
        max_length=args.max_length, max_output_length=args.max_output_length, lr=5e-4, weight_decay=0.0,
        kl_factor=0.1, norm_constraint=False, rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight",
        layer_module_tmp="model.layers.{}", mlp_module_tmp="model.layers.{}.mlp",
        attn_module_tmp="model.layers.{}.self_attn", ln_f_module="model.norm", lm_head_module="lm_head")


def run(model, tok, args, work: str, n: int) -> dict:
    os.makedirs(work, exist_ok=True)
    from easyedit_detox.data.safeedit import SafeEditDataset
    from easyedit_detox.evaluation.generation import GenerationSettings
    from easyedit_detox.evaluation.runner import Evaluation, EvaluationSettings, select_cases

    data = SafeEditDataset(synthetic_file(work, n))
    out = os.path.join(work, f"out-{n}")
    ev = Evaluation(model, tok, hparams(args), data, out, model_label="bench-scale",
                    settings=EvaluationSettings(cases_per_batch=8, use_cache=False, progress=False, general_cases=0,
                                                batch_size=args.batch_size),
                    generation=GenerationSettings(args.max_length, args.max_output_length, batch_size=args.batch_size))
    started = time.perf_counter()
    ev.run(select_cases(data))
    total = time.perf_counter() - started
    rest = total - sum(ev.timings.values())
    return {"cases": n, "total": total, **ev.timings, "bookkeeping": rest, "out": out}


def previous_runner_cost(out: str, groups_to_time: int = 4, group: int = 8) -> dict:
    """Seconds the previous runner spent recomputing the summary after each group, measured on a few groups."""
    from easyedit_detox.data.safeedit import METRIC_KEYS
    from easyedit_detox.evaluation.metrics import fluency, summarize

    with open(os.path.join(out, "cases.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    n = len(rows)

    def recompute(upto):
        for side in ("pre", "post"):
            summarize([{k: r[side][k]["label"] for k in METRIC_KEYS} for r in rows[:upto]])
            fluency([[r[side][k]["response"] for k in METRIC_KEYS] for r in rows[:upto]])

    points = [n * (i + 1) // groups_to_time for i in range(groups_to_time)]
    per_case = []
    for upto in points:
        started = time.perf_counter()
        recompute(upto)
        per_case.append((time.perf_counter() - started) / upto)
    cost = sum(per_case) / len(per_case)
    recomputes = [min(n, g) for g in range(group, n + group, group)]
    return {"ms_per_case_per_recompute": 1000 * cost, "estimated_total_s": cost * sum(recomputes)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="135,1350", help="two case counts, the first is the baseline")
    parser.add_argument("--max-length", type=int, default=384)
    parser.add_argument("--max-output-length", type=int, default=96)
    parser.add_argument("--batch-size", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=8, help="cases run first and not measured")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    small, large = (int(s) for s in args.sizes.split(","))

    model, tok = build()
    work = tempfile.mkdtemp(prefix="bench-scale-")
    try:
        if args.warmup:
            run(model, tok, args, os.path.join(work, "warmup"), args.warmup)  # first-call costs out of the figures
        results = [run(model, tok, args, work, n) for n in (small, large)]
        previous = previous_runner_cost(results[1]["out"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_case = [r["total"] / r["cases"] for r in results]
    ratio = per_case[1] / per_case[0]
    rows = []
    for r in results:
        n = r["cases"]
        rows.append([n, f"{r['total']:.1f}", f"{r['total'] / n * 1000:.0f}", f"{r['vanilla'] / n * 1000:.0f}",
                     f"{r['edit'] / n * 1000:.0f}", f"{r['post'] / n * 1000:.0f}", f"{r['bookkeeping'] / n * 1000:.1f}"])
    print(f"SafeEdit evaluation of DINM (1 step, layer 1) on synthetic cases, tiny LLaMA ({TINY['num_layers']} layers, "
          f"width {TINY['hidden']}, random weights), greedy, max_length {args.max_length}, max_output_length "
          f"{args.max_output_length} (every response full length), {args.batch_size} sequences per call, 8 cases "
          "per batched post-edit generation, keyword judge, nothing cached")
    print(f"machine: {machine()}")
    print(markdown_table(["cases", "total s", "ms/case", "vanilla ms/case", "edit ms/case", "post ms/case",
                          "bookkeeping ms/case"], rows))
    print(f"seconds per case at {large} / at {small}: {ratio:.2f}x")
    print(f"the previous runner's summary recomputation: {previous['ms_per_case_per_recompute']:.2f} ms per case per "
          f"recompute, about {previous['estimated_total_s']:.0f} s over {large} cases in groups of 8 "
          f"(this run's whole bookkeeping: {results[1]['bookkeeping']:.1f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "args": vars(args), "runs": [{k: v for k, v in r.items() if k != "out"}
                                                                         for r in results],
                       "ratio": ratio, "previous_runner": previous}, f, indent=2)


if __name__ == "__main__":
    main()
