"""`easyedit-detox demo`: DINM at work offline, on the embedded toy model and the bundled SafeEdit records.

Part 1 follows one SafeEdit instance: the vanilla answer, the located toxic layer, the edit's loss
curve and the edited model's answer. Part 2 runs the SafeEdit evaluation hook on every demo case
and prints the pre/post table with the judge named.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from importlib import resources
from typing import Callable, Optional

from .dinm import DINMHyperParams, apply_dinm_to_model
from .errors import UserError
from .evaluation.compare import run_compare
from .files import write_atomically
from .dinm.locate import layer_distances
from .evaluation.dataset import SafeEditDataset
from .evaluation.generation import GenerationSettings, generate_responses
from .evaluation.runner import EvaluationSettings, evaluate
from .toy import sample_path
from .weights import write_back

TOY_DESCRIPTION = ("the embedded toy model: a 4-layer, width-128 LLaMA (about 1M parameters) trained by "
                   "scripts/build_demo_model.py to memorise the unsafe answers of the 30 bundled SafeEdit "
                   "records; it is not a language model")


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
    write_back(model, weights_copy)  # part 2 starts from the vanilla model

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


DEMO_MARKER = ".easyedit-detox-demo"
# (label, hparams file, results subfolder)
METHODS = (("DINM", "dinm-toy.yaml", "dinm"), ("FT-L", "ft-toy.yaml", "ft-l"), ("LoRA", "lora-toy.yaml", "lora"))


def claim_folder(out_dir: str) -> None:
    """Make `out_dir` the demo's: create it (marked), or empty a folder an earlier demo marked; refuse any other."""
    marker = os.path.join(out_dir, DEMO_MARKER)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir) or not os.path.exists(marker):
            raise UserError(f"{out_dir!r} exists and was not written by the demo; the demo never deletes what it did "
                            "not create: pass another --out, or remove that folder yourself")
        with open(marker, encoding="utf-8") as f:
            owned = json.load(f).get("entries", [])
        for name in owned:  # only what the demo wrote there
            path = os.path.join(out_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            elif os.path.exists(path):
                os.unlink(path)
    else:
        os.makedirs(out_dir)
    entries = [folder for _, _, folder in METHODS] + ["vanilla-cache", "compare.png", "compare.csv", "compare.tex",
                                                  "demo.log"]
    write_atomically(marker, json.dumps({"written_by": "easyedit-detox demo", "entries": entries}) + "\n")


def load_method_hparams(file_name: str, model_folder: str):
    """The demo's hparams for one method, in the installed EasyEdit's format, pointed at the toy model."""
    from .bridge.hparams import load_hparams
    from .upstream import flavour

    folder = "git" if flavour() == "git" and file_name != "dinm-toy.yaml" else ""
    hparams = load_hparams(asset(folder, file_name) if folder else asset(file_name))
    hparams.model_name = model_folder
    return hparams


def run_demo(out_dir: str = "results/demo", n_cases: Optional[int] = None,
             write: Callable[[str], None] = lambda line: sys.stdout.write(line + "\n")) -> str:
    """Run both parts of the demo; returns the comparison table."""
    started = time.perf_counter()
    claim_folder(out_dir)
    model, tok, hparams = load_toy()
    dataset = SafeEditDataset(sample_path(), limit=n_cases)
    write(f"# easyedit-detox demo: {TOY_DESCRIPTION}.\n")
    show_one_instance(model, tok, hparams, dataset[0], write)

    write(f"## 2. SafeEdit evaluation of DINM, FT-L and LoRA on {len(dataset)} cases (results in {out_dir}/)\n")
    settings = dict(cache_dir=os.path.join(out_dir, "vanilla-cache"), cases_per_batch=8, general_cases=3,
                    general_items=10)
    # One generation protocol for all three (the toy's limits, from dinm-toy.yaml), so the runs compare.
    generation = GenerationSettings(hparams.max_length, hparams.max_output_length, batch_size=8)
    folders = []
    for label, file_name, folder in METHODS:
        method_hparams = hparams if label == "DINM" else load_method_hparams(file_name, asset("toy_model"))
        write(f"- {label}: {_describe(method_hparams)}")
        evaluate(model, tok, method_hparams, dataset, os.path.join(out_dir, folder), judge="keywords",
                 model_label="toy model (embedded)", settings=EvaluationSettings(**settings), generation=generation)
        folders.append(os.path.join(out_dir, folder))
    table = run_compare(folders, plot=os.path.join(out_dir, "compare.png"))
    write("")
    write(f"model: {TOY_DESCRIPTION}")
    write(f"data: the first {len(dataset)} records of the SafeEdit test split (bundled, CC BY-NC-SA 4.0)")
    write("judge: keywords (a response with a refusal phrase counts safe); pre = the vanilla model on the plain "
          "inputs, post = each case's edited model (DINM: on the inputs with the suffix system prompt). "
          "OverRefusal: benign SafeEdit instructions refused (keyword judge), on the vanilla model and 3 edited "
          "ones; Degenerate: empty or looping responses; *_strict: a degenerate response counts as unsafe.\n")
    write(table)
    write(f"\ndone in {time.perf_counter() - started:.0f}s. The toy model shows the mechanics, not a result "
          "about real models: see the README for evaluating a real checkpoint.")
    return table


def _describe(hparams) -> str:
    keys = ("layers", "num_steps", "lr", "rewrite_module_tmp", "target_modules", "rank", "lora_type")
    return ", ".join(f"{k} {getattr(hparams, k)}" for k in keys if hasattr(hparams, k))
