"""`easyedit-detox`: evaluate EasyEdit methods on SafeEdit, compare runs, ship detoxified models, run the demo.

Argument parsing only: each command calls one function of the package. Nothing heavy is imported
before a command runs (easyeditor only for commands that edit), so `--help` and `compare` answer at once.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import List, Optional

from easyedit_detox.core.dtypes import DTYPE_NAMES

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


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value




def _add_prompt_format(parser) -> None:
    parser.add_argument("--prompt-format", default="raw", choices=["raw", "chat"],
                        help="raw (default, SafeEdit's): the text as it is; chat: every input, and the edit request, as "
                             "one user turn through the tokenizer's chat template with the generation prompt")


def _add_model_overrides(parser) -> None:
    parser.add_argument("--model", dest="model_dir", metavar="DIR",
                        help="load this checkpoint folder (or gguf: name) instead of the hparams' model_name")
    parser.add_argument("--device", help="cpu, cuda, cuda:N, N or auto instead of the hparams' device "
                                         "(refused with model_parallel: true)")


def _add_training(parser, help_text: str) -> None:
    parser.add_argument("--train", metavar="FILE", help=help_text)
    parser.add_argument("--train-limit", type=_positive, metavar="N", help="with --train: its first N records")
    parser.add_argument("--train-cases", type=_case_ids, metavar="IDS",
                        help="with --train: only these record ids of FILE, e.g. 0,1,2,3")


def _add_evaluate(sub) -> None:
    from easyedit_detox.evaluation.probes import GENERAL_PROBES  # light: plain-data modules only

    ev = sub.add_parser("evaluate", help="edit each SafeEdit case with an EasyEdit method and score it")
    ev.add_argument("--hparams", required=True, help="EasyEdit hparams YAML (alg_name picks the method)")
    ev.add_argument("--data", required=True, help="SafeEdit JSON file (zjunlp/SafeEdit format)")
    ev.add_argument("--out", required=True, help="results folder (resumed when it exists)")
    ev.add_argument("--judge", default="keywords", help="keywords (default), classifier:DIR (its id2label read; "
                                                        "DIR@unsafe=N states which output means unsafe) or "
                                                        "guard:DIR (a LlamaGuard-style chat safety model)")
    ev.add_argument("--limit", type=_positive, help="only the first N records")
    ev.add_argument("--cases", type=_case_ids, help="only these record ids, e.g. 0,3,7")
    ev.add_argument("--dtype", default="float32", choices=DTYPE_NAMES,
                    help="dtype to load the model in (default float32, as EasyEdit)")
    _add_model_overrides(ev)
    ev.add_argument("--max-length", type=_positive,
                    help="tokens of input plus response (default: the hparams' max_length for DINM, else 2048)")
    ev.add_argument("--max-output-length", type=_positive,
                    help="new tokens per response (default: the hparams' max_output_length for DINM, else 600)")
    ev.add_argument("--generation", default="greedy", choices=["greedy", "easyedit"],
                    help="greedy (default, SAFEEDIT.md) or easyedit: as EasyEdit-git's test_safety_gen "
                         "(the checkpoint's generation config, seeded 42) to reproduce published numbers")
    _add_prompt_format(ev)
    ev.add_argument("--batch-size", type=_positive, default=8, help="sequences per generate() call")
    ev.add_argument("--cases-per-batch", type=_positive, default=8,
                    help="edited cases whose post-edit responses share one batched generation")
    ev.add_argument("--general-cases", type=_non_negative, default=10,
                    help="edited cases (spread over the run) whose models also answer the general probes "
                         "(KQA, CSum, over-refusal); 0 turns the general probes off (default 10)")
    ev.add_argument("--general-items", type=_positive, default=50, help="items per general probe (default 50)")
    for probe in GENERAL_PROBES.values():
        if probe.option:
            ev.add_argument(probe.option, dest=probe.option.lstrip("-").replace("-", "_"), metavar="FILE",
                            help=probe.option_help)
    ev.add_argument("--refusal-judge", help="refusal detector for over-refusal: keywords (default) or classifier:DIR "
                                            "(labels named refusal/compliance, or DIR@refusal=N)")
    ev.add_argument("--sequential", action="store_true",
                    help="keep every edit: each case's edit starts from the model the previous ones left")
    ev.add_argument("--checkpoint-every", type=_non_negative, default=0,
                    help="with --sequential: answer every case's inputs after each T edits (default: at the end)")
    _add_training(ev, "the global protocol: detoxify the model once from the records of FILE (SafeEdit format, e.g. "
                      "SafeEdit's train split), then answer every evaluated case with that one model")
    ev.add_argument("--cache", help="vanilla-response cache folder (default ~/.cache/easyedit_detox)")
    ev.add_argument("--no-cache", action="store_true", help="generate every vanilla response afresh")
    ev.add_argument("--no-progress", action="store_true", help="hide the progress bars")
    ev.add_argument("--easyedit-metrics", metavar="FILE.json",
                    help="also write the cases as EasyEdit-git's SafetyEditor.edit returns them (all_metrics)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the `easyedit-detox` command."""
    parser = argparse.ArgumentParser(prog="easyedit-detox", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_evaluate(sub)

    cmp_ = sub.add_parser("compare", help="the paper's table: several results folders side by side")
    cmp_.add_argument("dirs", nargs="+", help="results folders written by `evaluate`")
    cmp_.add_argument("--force", action="store_true", help="compare runs on different data, judges, generation or cases")
    cmp_.add_argument("--latex", metavar="FILE", help="also write a LaTeX tabular")
    cmp_.add_argument("--csv", metavar="FILE", help="also write a CSV file")
    cmp_.add_argument("--plot", metavar="FILE.png", help="also draw grouped bars (and the sequential curve)")

    rj = sub.add_parser("rejudge", help="judge a finished run's responses again into a new folder (nothing generated)")
    rj.add_argument("run", help="results folder written by `evaluate` (only read)")
    rj.add_argument("--judge", required=True, help="keywords, classifier:DIR[@unsafe=N] or guard:DIR")
    rj.add_argument("--out", required=True, help="the new results folder (must not exist)")

    ap = sub.add_parser("apply", help="detoxify and keep: edits one after another, then save the model and/or a patch")
    ap.add_argument("--hparams", required=True, help="EasyEdit hparams YAML of the method")
    ap.add_argument("--data", help="SafeEdit JSON file whose records to edit with, one after another")
    ap.add_argument("--cases", type=_case_ids, help="record ids to edit with, in order, e.g. 0,3,7")
    ap.add_argument("--limit", type=_positive, help="the first N records")
    _add_training(ap, "instead of --data: detoxify once from the records of FILE, as `evaluate --train` does "
                      "(the global protocol), and ship that model")
    ap.add_argument("--save", metavar="DIR", help="write the edited model as a Hugging Face folder")
    ap.add_argument("--patch", metavar="FILE", help="write only the changed tensors (safetensors, with metadata)")
    ap.add_argument("--dtype", default="float32", choices=DTYPE_NAMES, help="dtype to load the model in")
    _add_model_overrides(ap)
    _add_prompt_format(ap)
    ap.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    patch = sub.add_parser("patch", help="put an edit patch on a base model, or take it off an edited one")
    patch_sub = patch.add_subparsers(dest="patch_command", required=True)
    for name, model_help in (("apply", "the base model's folder"), ("revert", "the edited model's folder")):
        p = patch_sub.add_parser(name, help=f"{name} a patch and save the result")
        p.add_argument("--model", required=True, help=model_help)
        p.add_argument("--patch", required=True, help="patch file written by `apply --patch`")
        p.add_argument("--out", required=True, help="folder for the resulting model")
        p.add_argument("--dtype", choices=DTYPE_NAMES, help="dtype to load in (default: the patch's)")

    mend = sub.add_parser("train-mend", help="meta-train MEND's hypernetwork on SafeEdit (the paper's baseline)")
    mend.add_argument("--hparams", required=True, help="MEND training YAML (hparams/TRAINING/MEND/...)")
    mend.add_argument("--train", required=True, help="SafeEdit train JSON")
    mend.add_argument("--val", required=True, help="SafeEdit validation JSON")
    mend.add_argument("--out", required=True, help="folder for the checkpoint (resumed when it exists)")
    mend.add_argument("--max-steps", type=_positive, help="stop after this many training steps")
    _add_model_overrides(mend)
    mend.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    demo = sub.add_parser("demo", help="DINM, FT-L and LoRA on SmolLM2-135M-Instruct (or the toy), offline, in minutes")
    demo.add_argument("--out", default="results/demo", help="results folder (default results/demo)")
    demo.add_argument("--records", type=_positive, default=None,
                      help="how many records part 2 runs (default: 1 held-out record on SmolLM2, all 30 on the toy)")
    # --cases was this count's first name; `evaluate --cases` takes record ids, so the count is --records now.
    demo.add_argument("--cases", type=_positive, dest="records", help=argparse.SUPPRESS)
    demo.add_argument("--toy", action="store_true",
                      help="the embedded 1M-parameter toy model instead of SmolLM2 (raw format, about a minute)")
    return parser


def _quiet_model_loading() -> None:
    # transformers 5 draws a "Loading weights" bar on stderr at every from_pretrained (4.x does not for one
    # shard); stderr is for the command's own progress bars and its one-line errors.
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


# Each command's glue is `run(args)` in commands/<module>.py, imported only when that command runs.
COMMANDS = {"evaluate": "evaluate", "compare": "compare", "rejudge": "rejudge", "apply": "apply", "patch": "patch",
            "train-mend": "train_mend", "demo": "demo"}
# Commands that load a model (and so import transformers); `compare` must not.
MODEL_COMMANDS = ("evaluate", "rejudge", "apply", "patch", "train-mend", "demo")


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point; returns the exit status (2 for bad input, with a one-line message)."""
    args = build_parser().parse_args(argv)
    from easyedit_detox.core.errors import UserError

    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger().setLevel(logging.INFO if args.verbose else logging.WARNING)
    try:
        if args.command in MODEL_COMMANDS:
            _quiet_model_loading()
        import importlib

        return importlib.import_module(f"easyedit_detox.commands.{COMMANDS[args.command]}").run(args)
    except UserError as exc:
        print(f"easyedit-detox: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except ImportError as exc:
        from easyedit_detox.easyedit.upstream import INSTALL_HINT

        if INSTALL_HINT not in str(exc):
            raise
        # easyeditor missing or broken: the message says how to install it.
        print(f"easyedit-detox: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("easyedit-detox: interrupted; finished work is saved, run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
