"""SafeEdit evaluation of an EasyEdit method from Python (the CLI's `evaluate`, as a function).

    python examples/evaluate_any_method.py --hparams hparams/FT/llama-7b.yaml --data SafeEdit_test.json --out results/ft
"""

import argparse

import easyedit_detox  # noqa: F401  (registers DINM)
from easyedit_detox.easyedit.loading import load_model_and_tokenizer
from easyedit_detox.methods.hparams import load_hparams
from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate
from easyedit_detox.report.tables import summary_markdown


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--hparams", required=True, help="an EasyEdit hparams YAML (DINM, FT, LoRA, MEND, ...)")
    parser.add_argument("--data", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--judge", default="keywords", help="keywords or classifier:DIR")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--general-cases", type=int, default=10, help="edited states answering the general probes")
    args = parser.parse_args()
    hparams = load_hparams(args.hparams)
    model, tok = load_model_and_tokenizer(hparams)
    summary = evaluate(model, tok, hparams, args.data, args.out, judge=args.judge, limit=args.limit,
                       settings=EvaluationSettings(general_cases=args.general_cases))
    print(summary_markdown(summary))


if __name__ == "__main__":
    main()
