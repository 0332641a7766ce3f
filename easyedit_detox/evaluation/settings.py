"""How an evaluation runs: its settings, the generation limits it defaults to, and which cases it takes."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Optional, Sequence, Tuple

from easyedit_detox.core.errors import UserError
from easyedit_detox.data.safeedit import SafeEditCase, SafeEditDataset

PROTOCOLS = ("greedy", "easyedit")
# summary.json's "time": generation of the SafeEdit inputs before and after the edits, the edits, the general
# probes (their share of each generation call, by tokens, plus their scoring) and judging the SafeEdit responses.
TIME_PHASES = ("vanilla", "edit", "post", "general", "judge")
# SafeEdit's generation limits where the method's hparams class has none (all but DINM's).
SAFEEDIT_MAX_LENGTH, SAFEEDIT_MAX_OUTPUT_LENGTH = 2048, 600
# Keys of the hparams that do not change the numbers, so a resumed run may differ in them.
RUNTIME_KEYS = ("device", "model_parallel", "batch_size", "model_name")


def generation_defaults(hparams) -> Tuple[int, int]:
    """(max_length, max_output_length): the hparams' own where its class has both (DINM), else SafeEdit's 2048/600."""
    length, output = getattr(hparams, "max_length", None), getattr(hparams, "max_output_length", None)
    if isinstance(length, int) and isinstance(output, int) and not isinstance(length, bool):
        return length, output
    return SAFEEDIT_MAX_LENGTH, SAFEEDIT_MAX_OUTPUT_LENGTH


@dataclasses.dataclass
class EvaluationSettings:
    """How to run an evaluation; only `protocol` and the general-probe settings change its numbers."""

    batch_size: int = 8  # sequences per generate() call
    cases_per_batch: int = 8  # edited cases whose post-edit items share batched generation
    cache_dir: Optional[str] = None
    use_cache: bool = True
    progress: bool = True
    rank: Optional[int] = None
    world_size: Optional[int] = None
    merge_timeout_s: float = 24 * 3600.0
    run_id: Optional[str] = None
    protocol: str = "greedy"  # or "easyedit" (EasyEdit-git's test_safety_gen)
    prompt_format: str = "raw"  # or "chat": every input through the tokenizer's chat template (formats.py)
    general_cases: int = 10  # edited states that also answer the general probes (0: none)
    general_items: int = 50  # items per general probe
    general_options: Dict[str, Any] = dataclasses.field(default_factory=dict)  # e.g. {"kqa": path}
    sequential: bool = False
    checkpoint_every: int = 0  # sequential: answer after every T edits (0: only at the end)
    overrides: Dict[str, Any] = dataclasses.field(default_factory=dict)  # --model/--device over the hparams' own
    train: Optional[Any] = None  # a training.TrainingSet: the global protocol (detoxify once, then answer every case)


def select_cases(dataset: SafeEditDataset, case_ids: Optional[Sequence[int]] = None,
                 option: str = "--cases") -> List[SafeEditCase]:
    """The dataset's cases, or those whose record ids are in `case_ids` (in dataset order)."""
    cases = list(dataset)
    if case_ids is None:
        return cases
    known = {c.case_id for c in cases}
    missing = [i for i in case_ids if i not in known]
    if missing:
        raise UserError(f"{option} names id(s) {missing} that {dataset.path!r} does not hold "
                        f"(within --limit); ids there run from {min(known)} to {max(known)}")
    wanted = set(case_ids)
    return [c for c in cases if c.case_id in wanted]


def spread(cases: Sequence[SafeEditCase], n: int) -> List[SafeEditCase]:
    """`n` cases spread evenly over `cases` (all of them when n >= len(cases))."""
    if n <= 0 or not cases:
        return []
    if n >= len(cases):
        return list(cases)
    return [cases[i * len(cases) // n] for i in range(n)]
