"""`easyedit-detox demo`: DINM at work offline, on the embedded toy model and the bundled SafeEdit records.

Part 1 follows one SafeEdit instance: the vanilla answer, the located toxic layer, the edit's loss
curve and the edited model's answer. Part 2 runs the SafeEdit evaluation hook on every demo case
and prints the pre/post table with the judge named.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from importlib import resources
from typing import Callable, Optional

from .methods.restore import restore_weights
from .dinm import DINMHyperParams, apply_dinm_to_model
from .dinm.locate import layer_distances
from .evaluation.compare import summary_markdown
from .evaluation.dataset import SafeEditDataset
from .evaluation.generation import GenerationSettings, generate_responses
from .evaluation.runner import EvaluationSettings, evaluate
from .toy import sample_path

TOY_DESCRIPTION = ("the embedded toy model: a 4-layer, width-128 LLaMA (about 1M parameters) trained by "
                   "scripts/build_demo_model.py to memorise the unsafe answers of the 30 bundled SafeEdit "
                   "records; it is not a language model")
_OWN_FILES = {"cases.jsonl", "summary.json", "summary.md", "run.json", "vanilla-cache"}


def asset(*parts: str) -> str:
    """Path of a file shipped in easyedit_detox/demo_assets."""
    return str(resources.files("easyedit_detox").joinpath("demo_assets", *parts))


def load_toy():
    """(model, tokenizer, hparams) of the embedded toy model, float32 on the CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = asset("toy_model")
    hparams = DINMHyperParams.from_hparams(asset("dinm-toy.yaml"))
    hparams.model_name = folder
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    return model, tok, hparams


def _sparkline(values) -> str:
    bars = "▁▂▃▄▅▆▇█"
    lo, hi = min(values), max(values)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in values)


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show_one_instance(model, tok, hparams, case, write: Callable[[str], None]) -> None:
    """Part 1: one instance's vanilla answer, located layer, loss curve and edited answer."""
    settings = GenerationSettings(hparams.max_length, hparams.max_output_length)
    request = case.edit_request(hparams.suffix_system_prompt)
    before = generate_responses(model, tok, [case.eval_inputs["DS"]], settings)[0].text
    distances = layer_distances(model, tok, request["target_new"], request["ground_truth"])
    report: dict = {}
    start = time.perf_counter()
    _, weights_copy = apply_dinm_to_model(model, tok, [request], hparams, return_orig_weights=True,
                                          keep_original_weight=True, report=report)
    seconds = time.perf_counter() - start
    after = generate_responses(model, tok, [request["prompt"]], settings)[0].text
    restore_weights(model, model, weights_copy, "DINM")  # part 2 starts from the vanilla model

    write(f"## 1. One SafeEdit instance (record {case.case_id}, {case.record['unsafety category']})\n")
    write(f"adversarial prompt: {_short(case.eval_inputs['DS'])}")
    write(f"vanilla answer:     {_short(before)}\n")
    write("toxic-layer location: ||H_i(safe) - H_i(unsafe)|| per decoder layer")
    for i, d in enumerate(distances):
        mark = "  <- toxic layer" if i == report["layers"][0] else ""
        write(f"  layer {i}: {d:9.2f}{mark}")
    losses = report["losses"]
    write(f"\nDINM edit of {report['edited']} ({len(losses)} steps, {seconds:.1f}s):")
    write(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}   {_sparkline(losses)}")
    write("  " + " ".join(f"{x:.3f}" for x in losses))
    write(f"\nedited answer (input + suffix system prompt): {_short(after)}\n")


def run_demo(out_dir: str = "results/demo", n_cases: Optional[int] = None,
             write: Callable[[str], None] = lambda line: sys.stdout.write(line + "\n")) -> dict:
    """Run both parts of the demo; returns the evaluation summary."""
    started = time.perf_counter()
    model, tok, hparams = load_toy()
    dataset = SafeEditDataset(sample_path(), limit=n_cases)
    write(f"# easyedit-detox demo: DINM on {TOY_DESCRIPTION}.\n")
    show_one_instance(model, tok, hparams, dataset[0], write)

    if os.path.isdir(out_dir) and set(os.listdir(out_dir)) <= _OWN_FILES:
        shutil.rmtree(out_dir)  # the demo's own folder from an earlier run: start afresh
    write(f"## 2. SafeEdit evaluation of DINM on {len(dataset)} cases (results in {out_dir}/)\n")
    summary = evaluate(model, tok, hparams, dataset, out_dir, judge="keywords", model_label="toy model (embedded)",
                       settings=EvaluationSettings(cache_dir=os.path.join(out_dir, "vanilla-cache"),
                                                   cases_per_batch=8))
    write(f"model: {TOY_DESCRIPTION}")
    write(f"data: the first {summary['n_cases']} records of the SafeEdit test split (bundled, CC BY-NC-SA 4.0)")
    write("judge: keywords (a response with a refusal phrase counts safe); pre = vanilla model on the plain "
          "inputs, post = each case's DINM-edited model on the inputs with the suffix system prompt\n")
    write(summary_markdown(summary))
    write(f"\ndone in {time.perf_counter() - started:.0f}s. The toy model shows the mechanics, not a result "
          "about real models: see the README for evaluating a real checkpoint.")
    return summary
