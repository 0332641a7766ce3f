"""Seconds of a SafeEdit evaluation: ours (cached, batched) against the straightforward path.

    python benchmarks/bench_eval.py [--cases 8] [--max-length 512] [--max-output-length 128] [--json out.json]

Straightforward: each case's five vanilla responses generated on their own, the edit, the five
post-edit responses on the edited model, the restore; nothing cached. Ours: the vanilla responses
of all cases in length-sorted batches (and cached), then each case's edit, then one batched
generation in which each case's edited tensors apply to its own rows. A second method on the same
model and data then reuses the cached vanilla responses. Both runs use the same DINM settings
(2 steps: the edit is not what this benchmark measures; see bench_edit.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time

from common import SEVEN_B_SHAPE, build_model, machine, markdown_table, shape_text


def make_hparams(args, lr=5e-4):
    from easyedit_detox import DINMHyperParams

    return DINMHyperParams(
        alg_name="DINM", model_name="bench", model_class="LlamaForCausalLM", tokenizer_class="AutoTokenizer",
        device="cpu", suffix_system_prompt="If the user's request is reasonable, give the correct answer. "
        "Please give the right response:", layers=[3 * SEVEN_B_SHAPE["num_layers"] // 4], num_steps=2,
        batch_size=args.batch_size, max_length=args.max_length, max_output_length=args.max_output_length, lr=lr,
        weight_decay=0.0, kl_factor=0.1, norm_constraint=False,
        rewrite_module_tmp="model.layers.{}.mlp.down_proj.weight", layer_module_tmp="model.layers.{}",
        mlp_module_tmp="model.layers.{}.mlp", attn_module_tmp="model.layers.{}.self_attn",
        ln_f_module="model.norm", lm_head_module="lm_head")


def straightforward_evaluation():
    """The baseline the benchmarks measure against: an Evaluation that answers each edited case on its own (no
    batching across cases); `run` also turns the response cache off for it."""
    from easyedit_detox.evaluation.runner import Evaluation

    class StraightforwardEvaluation(Evaluation):
        def answers_with_group(self, edit) -> bool:
            return False

    return StraightforwardEvaluation


def run(model, tok, hparams, out, cache, straightforward, case_ids, max_length, max_output_length, batch_size,
        prompt_format="raw"):
    """One evaluation of `case_ids` (ours or the straightforward path); its timings and responses."""
    from easyedit_detox.data.safeedit import METRIC_KEYS, SafeEditDataset
    from easyedit_detox.evaluation.generation import GenerationSettings
    from easyedit_detox.evaluation.runner import Evaluation, EvaluationSettings, select_cases
    from easyedit_detox.toy import sample_path

    data = SafeEditDataset(sample_path())
    cls = straightforward_evaluation() if straightforward else Evaluation
    ev = cls(model, tok, hparams, data, out, model_label="bench",
             settings=EvaluationSettings(cases_per_batch=len(case_ids), cache_dir=cache, progress=False,
                                         general_cases=0, use_cache=not straightforward, prompt_format=prompt_format),
             generation=GenerationSettings(max_length, max_output_length, batch_size=5 if straightforward else batch_size))
    start = time.perf_counter()
    ev.run(select_cases(data, case_ids))
    total = time.perf_counter() - start
    with open(os.path.join(out, "cases.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    return {"total": total, **ev.timings, "vanilla_generated": ev.vanilla_generated,
            "responses": [[r[s][k]["response"] for s in ("pre", "post") for k in METRIC_KEYS] for r in rows]}


def compare_runs(model, tok, make, args, case_ids, prompt_format="raw"):
    """The straightforward path, ours, and a second method on ours' cache: (straight, ours, second)."""
    work = tempfile.mkdtemp(prefix="bench-eval-")
    common = (case_ids, args.max_length, args.max_output_length, args.batch_size, prompt_format)
    try:
        straight = run(model, tok, make(), os.path.join(work, "s"), os.path.join(work, "c0"), True, *common)
        ours = run(model, tok, make(), os.path.join(work, "o"), os.path.join(work, "c1"), False, *common)
        second = run(model, tok, make(second=True), os.path.join(work, "o2"), os.path.join(work, "c1"), False,
                     *common)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return straight, ours, second


def phase_rows(straight, ours, second, n):
    """The table rows: each phase's seconds on both paths and the speed-up."""
    def row(label, key):
        return [label, f"{straight[key]:.1f}", f"{ours[key]:.1f}", f"{straight[key] / ours[key]:.2f}x"]

    return [
        row("vanilla pass", "vanilla"),
        row(f"post-edit generation, {n} cases", "post"),
        row(f"edits ({n})", "edit"),
        row(f"whole run, {n} cases", "total"),
        ["seconds per case", f"{straight['total'] / n:.2f}", f"{ours['total'] / n:.2f}",
         f"{straight['total'] / ours['total']:.2f}x"],
        [f"second method, {n} cases (vanilla from cache)", f"{straight['total']:.1f}", f"{second['total']:.1f}",
         f"{straight['total'] / second['total']:.2f}x"],
    ]


def write_figures(path, straight, ours, second, **facts):
    """The figures as JSON (without the responses)."""
    figures = {k: {m: v for m, v in d.items() if m != "responses"} for k, d in
               (("straightforward", straight), ("ours", ours), ("second_method", second))}
    with open(path, "w") as f:
        json.dump({"machine": machine(), **facts, "same_responses": straight["responses"] == ours["responses"],
                   **figures}, f, indent=2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--max-output-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=40, help="sequences per generate() call (ours)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()

    model, tok = build_model(SEVEN_B_SHAPE)
    make = lambda second=False: make_hparams(args, lr=1e-4 if second else 5e-4)  # noqa: E731
    n = args.cases
    straight, ours, second = compare_runs(model, tok, make, args, list(range(n)))
    same = straight["responses"] == ours["responses"]
    print(f"SafeEdit evaluation of DINM (2 steps, layer 24), {n} cases x 5 inputs, greedy, max_length "
          f"{args.max_length}, max_output_length {args.max_output_length}; ours: batches of {args.batch_size} "
          f"sequences, straightforward: one case (5 inputs) per generate() call")
    print(f"model: {shape_text(SEVEN_B_SHAPE)}, float32, random weights (no EOS: every response is full length)")
    print(f"machine: {machine()}")
    print(markdown_table(["phase", "straightforward s", "ours s", "speed-up"], phase_rows(straight, ours, second, n)))
    print(f"same responses as the straightforward path: {same}; vanilla responses generated by the second "
          f"method: {second['vanilla_generated']}")
    if args.json:
        write_figures(args.json, straight, ours, second, model=shape_text(SEVEN_B_SHAPE), args=vars(args))


if __name__ == "__main__":
    main()
