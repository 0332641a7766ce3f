"""The `evaluate` command: load hparams, data, judge and model from files, run the evaluation, print its table."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import check_output_path, read_yaml
from easyedit_detox.data.safeedit import SafeEditDataset
from easyedit_detox.easyedit.loading import load_model_and_tokenizer
from easyedit_detox.evaluation.generation import GenerationSettings
from easyedit_detox.evaluation.judges import get_judge
from easyedit_detox.evaluation.probes import GENERAL_PROBES
from easyedit_detox.evaluation.runner import Evaluation, EvaluationSettings, generation_defaults, select_cases
from easyedit_detox.methods.hparams import apply_overrides, load_hparams
from easyedit_detox.evaluation.training import TrainingSet, check_disjoint
from easyedit_detox.methods.registry import adapter_for, refuse_unsupported
from easyedit_detox.report.tables import summary_markdown


def evaluate_from_files(hparams_path: str, data_path: str, out_dir: str, judge: str = "keywords",
                        limit: Optional[int] = None, case_ids: Optional[Sequence[int]] = None,
                        dtype: str = "float32", max_length: Optional[int] = None,
                        max_output_length: Optional[int] = None,
                        settings: Optional[EvaluationSettings] = None, model_dir: Optional[str] = None,
                        device: Optional[str] = None,
                        easyedit_metrics: Optional[str] = None) -> Optional[Dict[str, Any]]:
    """The `evaluate` command: load hparams, data, judge and model (checking each before the slow part), then run."""
    settings = settings or EvaluationSettings()
    if easyedit_metrics is not None:
        check_output_path(easyedit_metrics, "EasyEdit metrics file", (".json",))
        if settings.sequential:
            raise UserError("--easyedit-metrics writes EasyEdit's per-case all_metrics list; a --sequential run has "
                            "no per-case post-edit responses: drop one of the two")
    alg_name = str(read_yaml(hparams_path).get("alg_name"))
    refuse_unsupported(alg_name)  # before anything is loaded
    if settings.train is not None:
        if settings.sequential:
            raise UserError("--train detoxifies once from a training file; --sequential edits case after case: "
                            "drop one of the two")
        adapter_for(alg_name).refuse_global()
    hparams = load_hparams(hparams_path)
    overrides = apply_overrides(hparams, model=model_dir, device=device)
    if overrides:
        settings = dataclasses.replace(settings, overrides=overrides)
    dataset = SafeEditDataset(data_path, limit=limit)
    cases = select_cases(dataset, case_ids)
    if settings.train is not None:
        check_disjoint(settings.train.cases(), cases)  # before the model is loaded
    judge = get_judge(judge)
    default_length, default_output = generation_defaults(hparams)
    generation = GenerationSettings(max_length or default_length, max_output_length or default_output,
                                    batch_size=settings.batch_size)
    model, tok = load_model_and_tokenizer(hparams, dtype=dtype)
    evaluation = Evaluation(model, tok, hparams, dataset, out_dir, judge=judge, model_label=str(hparams.model_name),
                            settings=settings, generation=generation)
    summary = evaluation.run(cases)
    if easyedit_metrics is not None and summary is not None:
        evaluation.write_easyedit_metrics(easyedit_metrics)
    return summary


def training_set(args) -> Optional[TrainingSet]:
    """The --train records the command line names (None without --train)."""
    if args.train is None:
        for flag, value in (("--train-limit", args.train_limit), ("--train-cases", args.train_cases)):
            if value is not None:
                raise UserError(f"{flag} selects records of the --train file; add --train FILE, or drop {flag}")
        return None
    return TrainingSet(args.train, limit=args.train_limit, case_ids=args.train_cases)


def run(args) -> int:
    """Run the command from parsed arguments; returns the exit status."""
    options = {}
    for probe in GENERAL_PROBES.values():
        if probe.option:
            key = probe.option.lstrip("-").replace("-", "_")
            if getattr(args, key, None):
                options[key] = getattr(args, key)
    if args.refusal_judge:
        options["refusal_judge"] = args.refusal_judge
    train = training_set(args)
    if args.checkpoint_every and not args.sequential:
        raise UserError(f"--checkpoint-every {args.checkpoint_every} answers the cases between sequential edits; "
                        "add --sequential, or drop --checkpoint-every")
    settings = EvaluationSettings(batch_size=args.batch_size, cases_per_batch=args.cases_per_batch,
                                  cache_dir=args.cache, use_cache=not args.no_cache, progress=not args.no_progress,
                                  protocol=args.generation, prompt_format=args.prompt_format,
                                  general_cases=args.general_cases,
                                  general_items=args.general_items, general_options=options,
                                  sequential=args.sequential, checkpoint_every=args.checkpoint_every, train=train)
    summary = evaluate_from_files(args.hparams, args.data, args.out, judge=args.judge, limit=args.limit,
                                  case_ids=args.cases, dtype=args.dtype, max_length=args.max_length,
                                  max_output_length=args.max_output_length, settings=settings,
                                  model_dir=args.model_dir, device=args.device, easyedit_metrics=args.easyedit_metrics)
    if summary is not None:  # rank 0 (or the only process)
        print(f"{summary['method']} on {summary['model']}, {summary['n_cases']} cases, judge {summary['judge']}, "
              f"prompt format {summary['prompt_format']}")
        print(summary_markdown(summary))
        lines = "sequential.jsonl" if args.sequential else "cases.jsonl"
        print(f"results: {args.out}/summary.json, {args.out}/{lines}"
              + (f", {args.easyedit_metrics} (EasyEdit's all_metrics)" if args.easyedit_metrics else ""))
    return 0
