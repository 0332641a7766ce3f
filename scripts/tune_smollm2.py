"""Tune DINM, FT-L and LoRA for SmolLM2-135M-Instruct in the chat format, on records 0-14 of the bundled sample only.

Records 15-29 are held out for every reported table; the search uses records 0-9. Each candidate is one `evaluate` run (keyword judge, chat
format, shorter responses than the reported runs to keep the search cheap on a CPU, over-refusal on 3 edited
states); the results go to OUT/<candidate>/ and a one-line-per-candidate table is printed at the end. The
hparams files under hparams/*/smollm2-135m-instruct.yaml quote that table.

    python scripts/tune_smollm2.py --out results/tune-smollm2 [--only dinm-lr3e-3]
"""

import argparse
import json
import os

import yaml

from easyedit_detox.easyedit.gguf_models import SMOLLM2
from easyedit_detox.methods.hparams import load_hparams
from easyedit_detox.easyedit.loading import load_model_and_tokenizer
from easyedit_detox.evaluation.generation import GenerationSettings
from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate
from easyedit_detox.toy import sample_path
from easyedit_detox.easyedit.upstream import flavour

# The first 10 of the 15 tuning records: each candidate costs about 10 minutes on a 2-core CPU.
TUNING_IDS = list(range(10))
MAX_LENGTH, MAX_NEW = 2048, 96

LLAMA_MODULES = {"rewrite_module_tmp": "model.layers.{}.mlp.down_proj.weight", "layer_module_tmp": "model.layers.{}",
                 "mlp_module_tmp": "model.layers.{}.mlp", "attn_module_tmp": "model.layers.{}.self_attn",
                 "ln_f_module": "model.norm", "lm_head_module": "lm_head"}
BASE = {"model_name": SMOLLM2, "device": "cpu", "batch_size": 1, "max_length": MAX_LENGTH, "weight_decay": 0,
        "norm_constraint": False, "model_parallel": False}
DINM = {**BASE, **LLAMA_MODULES, "alg_name": "DINM", "model_class": "AutoModelForCausalLM",
        "tokenizer_class": "AutoTokenizer", "layers": [], "kl_factor": 0.1, "max_output_length": MAX_NEW,
        "suffix_system_prompt": "If the user's request is reasonable, give the correct answer. Please give the right response:"}
FT = {**BASE, **LLAMA_MODULES, "alg_name": "FT", "kl_factor": 0}
LORA = {**{k: v for k, v in BASE.items() if k != "model_parallel"}, "alg_name": "LoRA", "layers": [], "kl_factor": 0, "rank": 8, "lora_alpha": 32, "lora_dropout": 0.1,
        "target_modules": ["q_proj", "v_proj"]}
# Keys EasyEdit-git's hparams classes require and PyPI's refuse.
GIT_ONLY = {"FT": {"objective_optimization": "prompt_last"}, "LoRA": {"lora_type": "adalora", "model_parallel": False}}

CANDIDATES = {
    "dinm-lr1e-3": {**DINM, "lr": 1e-3, "num_steps": 20},
    "dinm-lr3e-3": {**DINM, "lr": 3e-3, "num_steps": 20},
    "ft-l20-lr5e-3": {**FT, "layers": [20], "lr": 5e-3, "num_steps": 25},
    "ft-l20-lr1e-3": {**FT, "layers": [20], "lr": 1e-3, "num_steps": 25},
    "ft-l26-lr5e-3": {**FT, "layers": [26], "lr": 5e-3, "num_steps": 25},
    "lora-lr5e-3": {**LORA, "lr": 5e-3, "num_steps": 20},
    "lora-lr2e-2": {**LORA, "lr": 2e-2, "num_steps": 20},
    "lora-lr3e-2": {**LORA, "lr": 3e-2, "num_steps": 20},
    "lora-lr5e-2": {**LORA, "lr": 5e-2, "num_steps": 20},
    "lora-lr1e-1": {**LORA, "lr": 1e-1, "num_steps": 20},
    "lora-lr5e-3-s60": {**LORA, "lr": 5e-3, "num_steps": 60},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/tune-smollm2")
    parser.add_argument("--only", nargs="*", help="candidate names (default: all)")
    parser.add_argument("--records", type=int, default=len(TUNING_IDS),
                        help=f"how many of records 0-{len(TUNING_IDS) - 1} to tune on (default all)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    model = tok = None
    rows = []
    for name, config in CANDIDATES.items():
        if args.only and name not in args.only:
            continue
        config = dict(config)
        if flavour() == "git":
            config.update(GIT_ONLY.get(config["alg_name"], {}))
        path = os.path.join(args.out, name + ".yaml")
        with open(path, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        hparams = load_hparams(path)
        if model is None:
            model, tok = load_model_and_tokenizer(hparams)
        # Batches of 32: a 135M model's decoding on a CPU is bound by reading the weights, not by arithmetic.
        settings = EvaluationSettings(prompt_format="chat", general_cases=3, general_items=5, batch_size=32,
                                      cases_per_batch=args.records, cache_dir=os.path.join(args.out, "vanilla-cache"))
        summary = evaluate(model, tok, hparams, sample_path(), os.path.join(args.out, name),
                           case_ids=TUNING_IDS[:args.records],
                           model_label="SmolLM2-135M-Instruct (Q4_1, dequantized)", settings=settings,
                           generation=GenerationSettings(MAX_LENGTH, MAX_NEW, batch_size=32))
        post = summary["post"]
        rows.append({"candidate": name, "records": TUNING_IDS[:args.records], **{k: round(post[k], 2) for k in
                     ("DS", "DG_Avg", "OverRefusal", "Degenerate", "DS_strict", "Fluency") if k in post},
                     "pre_DS": round(summary["pre"]["DS"], 2), "pre_OverRefusal": summary["pre"].get("OverRefusal")})
        print(json.dumps(rows[-1]), flush=True)
    path = os.path.join(args.out, "tuning.json")
    if os.path.exists(path):  # earlier candidates' rows stay
        with open(path, encoding="utf-8") as f:
            rows = [r for r in json.load(f) if r["candidate"] not in {x["candidate"] for x in rows}] + rows
    with open(path, "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
