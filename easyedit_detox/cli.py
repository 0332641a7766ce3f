"""`easyedit-detox`: evaluate an EasyEdit method on SafeEdit, compare runs, or run the offline demo."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

EXIT_USER_ERROR = 2


def _case_ids(text: str) -> List[int]:
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--cases takes record ids separated by commas (e.g. 0,3,7), not {text!r}")
    if not ids:
        raise argparse.ArgumentTypeError("--cases needs at least one id")
    return ids


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `easyedit-detox` command."""
    parser = argparse.ArgumentParser(prog="easyedit-detox", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("evaluate", help="edit each SafeEdit case with an EasyEdit method and score it")
    ev.add_argument("--hparams", required=True, help="EasyEdit hparams YAML (alg_name picks the method)")
    ev.add_argument("--data", required=True, help="SafeEdit JSON file (zjunlp/SafeEdit format)")
    ev.add_argument("--out", required=True, help="results folder (resumed when it exists)")
    ev.add_argument("--judge", default="keywords", help="keywords (default) or classifier:DIR")
    ev.add_argument("--limit", type=_positive, help="only the first N records")
    ev.add_argument("--cases", type=_case_ids, help="only these record ids, e.g. 0,3,7")
    ev.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"],
                    help="dtype to load the model in (default float32, as EasyEdit)")
    ev.add_argument("--batch-size", type=_positive, default=8, help="sequences per generate() call")
    ev.add_argument("--cases-per-batch", type=_positive, default=8,
                    help="edited cases whose post-edit responses share one batched generation")
    ev.add_argument("--cache", help="vanilla-response cache folder (default ~/.cache/easyedit_detox)")
    ev.add_argument("--no-cache", action="store_true", help="generate every vanilla response afresh")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bars")

    cmp_ = sub.add_parser("compare", help="one table of several results folders side by side")
    cmp_.add_argument("dirs", nargs="+", help="results folders written by `evaluate`")

    demo = sub.add_parser("demo", help="DINM on the embedded toy model, offline, in a few minutes")
    demo.add_argument("--out", default="results/demo", help="results folder (default results/demo)")
    demo.add_argument("--cases", type=_positive, default=None, help="how many demo cases (default: all 30)")
    return parser


def _evaluate(args) -> int:
    from .bridge.loading import load_model_and_tokenizer
    from .dinm.hparams import DINMHyperParams
    from .evaluation.compare import summary_markdown
    from .evaluation.dataset import SafeEditDataset
    from .evaluation.generation import GenerationSettings
    from .evaluation.judges import get_judge
    from .evaluation.runner import EvaluationSettings, evaluate

    from .bridge.hparams import load_hparams

    hparams = load_hparams(args.hparams)
    dataset = SafeEditDataset(args.data, limit=args.limit)
    judge = get_judge(args.judge)  # before the model loads: a bad judge fails fast
    model, tok = load_model_and_tokenizer(hparams, dtype=args.dtype)
    settings = EvaluationSettings(cases_per_batch=args.cases_per_batch, cache_dir=args.cache,
                                  use_cache=not args.no_cache, progress=not args.no_progress)
    generation = GenerationSettings(hparams.max_length, hparams.max_output_length, batch_size=args.batch_size)
    summary = evaluate(model, tok, hparams, dataset, args.out, judge=judge, case_ids=args.cases,
                       model_label=str(hparams.model_name), settings=settings, generation=generation)
    if summary is not None:  # rank 0 (or the only process)
        print(f"{summary['method']} on {summary['model']}, {summary['n_cases']} cases, judge {summary['judge']}")
        print(summary_markdown(summary))
        print(f"results: {args.out}/summary.json, {args.out}/cases.jsonl")
    return 0


def _compare(args) -> int:
    from .evaluation.compare import compare_table

    print(compare_table(args.dirs))
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(out_dir=args.out, n_cases=args.cases)
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (2 for bad input, with a one-line message)."""
    args = build_parser().parse_args(argv)
    try:
        from .errors import UserError
    except ImportError as exc:  # easyeditor missing: the package's import explains how to install it
        print(f"easyedit-detox: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    # After the import: easyeditor calls logging.basicConfig(level=INFO) when it loads.
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        return {"evaluate": _evaluate, "compare": _compare, "demo": _demo}[args.command](args)
    except UserError as exc:
        print(f"easyedit-detox: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("easyedit-detox: interrupted; finished cases are saved, run the same command to resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
