"""CSum: XSum ROUGE-1, as the SafeEdit paper measured it with OpenCompass.

Restated from OpenCompass (github.com/open-compass/opencompass, read at commit
a5acc4bba3b658f151617a3b393602110fb7a740; unchanged in substance since 2023):

- Prompt (`opencompass/configs/datasets/Xsum/Xsum_gen_31397e.py`, formerly under
  `configs/datasets/Xsum/`): one round with only a HUMAN turn, `CSUM_HUMAN_TEMPLATE` (the colon
  after "Document" is the full-width `：`); no BOT prefix; zero-shot `GenInferencer` without
  `max_out_len`, so the model config's applies (see `CSUM_MAX_NEW_TOKENS`).
- Data (`opencompass/datasets/xsum.py`, `XsumDataset.load`): JSON Lines with `dialogue` and
  `summary`; only the first 1,000 lines are read (`OPENCOMPASS_LINES`), and a record whose
  dialogue or summary is a float (a NaN left by a spreadsheet export) is skipped but still counts
  towards the 1,000. Its ModelScope path reads Hugging Face `xsum` (`document`, `summary`) and
  skips empty ones.
- Post-processing (`Xsum_postprocess` there): `postprocess`.
- Scoring (`RougeEvaluator`, `opencompass/openicl/icl_evaluator/icl_hf_evaluator.py`, with its
  copy of Hugging Face evaluate's `rouge` in `.../hf_metrics/rouge.py`): rouge-score's
  `RougeScorer` with `use_stemmer=False` and no tokenizer of its own, so rouge-score's default
  one (lower-case, every run of characters other than a-z and 0-9 becomes a space, split on
  spaces); `score(reference, prediction)` per item; ×100. evaluate's default
  `use_aggregator=True` reports the median (`.mid`) of a `BootstrapAggregator` (1,000 resamples
  of the per-item scores, with numpy's global RNG seeded 0 by OpenCompass) of the mean F-measure.
  `csum_score` reports the plain mean of the per-item F-measures instead: deterministic, and
  within bootstrap noise of OpenCompass's figure; `csum_bootstrap_score` reproduces that figure.
"""

from __future__ import annotations

import functools
import logging
import math
import os
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

from easyedit_detox.core.errors import DataError, UserError
from . import check_file, check_limit, field, iter_records

logger = logging.getLogger(__name__)

#: The HUMAN turn of OpenCompass's `Xsum_gen_31397e` template; `{dialogue}` is replaced.
CSUM_HUMAN_TEMPLATE = "Document：{dialogue}\nBased on the previous text, provide a brief single summary:"
#: The template has no BOT turn, so nothing is put before the model's answer.
CSUM_BOT_PREFIX = ""
#: New tokens per summary. The dataset config leaves `max_out_len` to the model config; the
#: HuggingFaceCausalLM model configs OpenCompass shipped when the paper was written (early 2024,
#: e.g. `configs/models/hf_llama/hf_llama2_7b_chat.py`, `.../mistral/hf_mistral_7b_v0_1.py`) set 100.
#: (Its configs from May 2024 on set 1024; only the first line is scored either way.)
CSUM_MAX_NEW_TOKENS = 100
#: XsumDataset reads at most this many lines of its file (skipped records included).
OPENCOMPASS_LINES = 1000

_WHAT = "XSum"
_FIX = ("use OpenCompass's XSum JSON Lines ('dialogue', 'summary') or Hugging Face xsum records "
        "('document', 'summary')")


@dataclass(frozen=True)
class CSumItem:
    """One XSum document and its reference summary."""

    document: str
    summary: str


# -- data --------------------------------------------------------------------------------------


def load_csum(path: Union[str, os.PathLike], limit: Optional[int] = None) -> List[CSumItem]:
    """The XSum items among the first `limit` records (all when None) of a JSON, JSONL or parquet file.

    Records hold `dialogue` (OpenCompass) or `document` (Hugging Face `xsum`), and `summary`. As
    OpenCompass does, a record whose document or summary is missing (NaN, null or empty) is
    skipped but counts towards `limit`: `limit=OPENCOMPASS_LINES` reads what OpenCompass reads.
    """
    check_limit(limit)
    path = check_file(path, _WHAT)
    items: List[CSumItem] = []
    seen = 0
    for where, record in iter_records(path, _WHAT):
        if limit is not None and seen >= limit:
            break
        seen += 1
        key = "dialogue" if isinstance(record, dict) and "dialogue" in record else "document"
        document = field(record, key, where, path, _WHAT, _FIX)
        summary = field(record, "summary", where, path, _WHAT, _FIX)
        if _missing(document) or _missing(summary):
            continue
        for name, value in ((key, document), ("summary", summary)):
            if not isinstance(value, str):
                raise DataError(f"{_WHAT} file '{path}', {where}: {name!r} is a {type(value).__name__}, "
                                f"not a string; {_FIX}")
        items.append(CSumItem(document=document, summary=summary))
    if not items:
        raise DataError(f"{_WHAT} file '{path}' holds no document with a summary; {_FIX}")
    logger.debug("Loaded %d XSum items (%d skipped) from %s", len(items), seen - len(items), path)
    return items


def _missing(value: Any) -> bool:
    # NaN is what OpenCompass's own file holds for a missing field; null and "" are the same
    # thing in other exports (and what its ModelScope path skips).
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


# -- prompt ------------------------------------------------------------------------------------


def csum_prompt(document: str) -> str:
    """The HUMAN text OpenCompass gives the model for `document`."""
    # OpenCompass fills the template with str.replace, field by field in the row's order (dialogue,
    # then the summary column, blanked): braces stay, but a literal "{summary}" in a document goes.
    return CSUM_HUMAN_TEMPLATE.replace("{dialogue}", document).replace("{summary}", "")


# -- scoring -----------------------------------------------------------------------------------


def postprocess(prediction: str) -> str:
    """OpenCompass's `Xsum_postprocess`: the first line of the stripped output, stripped."""
    return prediction.strip().partition("\n")[0].strip()


@functools.lru_cache(maxsize=1)
def _scorer():
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise UserError("CSum needs the rouge-score package; pip install rouge-score") from None
    # What Hugging Face evaluate's rouge builds with its defaults: no stemmer, default tokenizer.
    return rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)


def rouge1(prediction: str, reference: str) -> float:
    """ROUGE-1 F-measure (0 to 1) of `prediction` against `reference`, as rouge-score computes it."""
    return _scorer().score(reference, prediction)["rouge1"].fmeasure


def csum_score(predictions: Sequence[str], items: Sequence[CSumItem]) -> float:
    """CSum: 100 × the mean ROUGE-1 F of the post-processed raw outputs against the references."""
    scores = [score.fmeasure for score in _item_scores(predictions, items)]
    return 100.0 * sum(scores) / len(scores)


def csum_bootstrap_score(predictions: Sequence[str], items: Sequence[CSumItem], seed: int = 0,
                         samples: int = 1000) -> float:
    """CSum as OpenCompass reports it: 100 × the median of `samples` seeded bootstrap means of ROUGE-1 F."""
    import numpy as np

    # (item, precision/recall/F): the matrix rouge-score's BootstrapAggregator resamples rows of.
    matrix = np.array([tuple(score) for score in _item_scores(predictions, items)])
    # OpenCompass seeds numpy's global generator and ROUGE-1 is the first type aggregated, so its
    # resamples are the first draws of a fresh legacy generator seeded `seed`.
    generator = np.random.RandomState(seed)
    means = np.zeros((samples, matrix.shape[1]))
    for i in range(samples):
        rows = generator.choice(np.arange(matrix.shape[0]), size=matrix.shape[0])
        means[i, :] = np.mean(matrix[rows, :], axis=0)
    return 100.0 * float(np.percentile(means, 50, axis=0)[2])


def _item_scores(predictions: Sequence[str], items: Sequence[CSumItem]) -> list:
    """rouge-score's ROUGE-1 Score (precision, recall, fmeasure) of each post-processed prediction."""
    if len(predictions) != len(items):
        raise UserError(f"{len(predictions)} predictions for {len(items)} CSum items; "
                        "pass one prediction per item, in the items' order")
    if not items:
        raise UserError("no CSum items to score; load at least one with load_csum")
    scores = []
    for number, (prediction, item) in enumerate(zip(predictions, items), start=1):
        if not isinstance(prediction, str):
            raise UserError(f"CSum prediction {number} is a {type(prediction).__name__}, not a string; "
                            "pass the decoded model outputs")
        scores.append(_scorer().score(item.summary, postprocess(prediction))["rouge1"])
    return scores
