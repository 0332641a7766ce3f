"""KQA: TriviaQA accuracy, as the SafeEdit paper measured it with OpenCompass.

Restated from OpenCompass (github.com/open-compass/opencompass, read at commit
a5acc4bba3b658f151617a3b393602110fb7a740; the scoring code has been unchanged since Feb 2024):

- Prompt (`opencompass/configs/datasets/triviaqa/triviaqa_gen_2121ce.py`, formerly under
  `configs/datasets/triviaqa/`): one round, HUMAN `KQA_HUMAN_TEMPLATE` (note the `?` appended to
  the question even when it already ends with one) and BOT `KQA_BOT_PREFIX` ("A:"); zero-shot,
  `GenInferencer(max_out_len=50)`; the `dev` split of `trivia-dev.qa.csv` is the test set.
- Data (`opencompass/datasets/triviaqa.py`, `TriviaQADataset.load`): `trivia-{split}.qa.csv`,
  tab-separated, read with Python's `csv` module (default quoting), no header row, exactly two
  fields a row: the question and a Python literal list of answer strings.
- Scoring (`TriviaQAEvaluator.score` there): see `postprocess`, `answer_key` and `is_correct`;
  the score is 100 × the share of predictions that contain one of their answers.
- `general_postprocess` is in `opencompass/utils/text_postprocessors.py`.

OpenCompass before commit d34ba111 (5 Feb 2024) required the processed prediction to *equal* a
processed answer; since then an answer *contained in* the prediction counts. This module
follows the current rule, the one the project's SafeEdit notes describe.
"""

from __future__ import annotations

import ast
import csv
import logging
import os
import re
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Union

from easyedit_detox.core.errors import DataError, UserError
from . import check_file, check_limit, field, iter_records, take

logger = logging.getLogger(__name__)

#: The HUMAN turn of OpenCompass's `triviaqa_gen_2121ce` template; `{question}` is replaced.
KQA_HUMAN_TEMPLATE = ("Answer these questions, your answer should be as simple as possible, start your "
                      "answer with the prompt 'The answer is '.\nQ: {question}?")
#: The BOT turn of that template: the text the answer is to follow.
KQA_BOT_PREFIX = "A:"
#: `max_out_len` of the template's GenInferencer: new tokens generated per question.
KQA_MAX_NEW_TOKENS = 50

_WHAT = "TriviaQA"
_FIX = ("use OpenCompass's trivia-dev.qa.csv (question<TAB>['answer', ...]) or Hugging Face trivia_qa "
        "records with 'question' and 'answer' {'aliases': [...], 'normalized_aliases': [...]}")

# The markers after which TriviaQAEvaluator looks for the answer, in the order it cuts at them.
_ANSWER_MARKERS = ("answer is", "a:", "answer:")

# general_postprocess, step by step.
_FIRST_CLAUSE_END = re.compile(r"[\n.,]")
_PUNCTUATION = re.compile(r"[^\w\s]")
_ARTICLE = re.compile(r"\b(?:a|an|the)\b", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class KQAItem:
    """One TriviaQA question and every answer that counts as correct."""

    question: str
    answers: List[str]


# -- data --------------------------------------------------------------------------------------


def load_kqa(path: Union[str, os.PathLike], limit: Optional[int] = None) -> List[KQAItem]:
    """The first `limit` (all when None) TriviaQA items of an OpenCompass CSV or Hugging Face file.

    `.csv`/`.tsv`/`.txt`: OpenCompass's `trivia-dev.qa.csv`. `.json`/`.jsonl`/`.parquet`: records of
    Hugging Face `trivia_qa` (answers = `aliases` then `normalized_aliases`, duplicates dropped) or
    records whose `answer` is already a list of strings (OpenCompass's JSON Lines variants).
    """
    check_limit(limit)
    path = check_file(path, _WHAT)
    if os.path.splitext(path)[1].lower() in (".csv", ".tsv", ".txt"):
        rows = _csv_rows(path)
    else:
        rows = (_record_item(record, where, path) for where, record in iter_records(path, _WHAT))
    items = take(rows, limit)
    if not items:
        raise DataError(f"{_WHAT} file '{path}' holds no questions; {_FIX}")
    logger.debug("Loaded %d TriviaQA items from %s", len(items), path)
    return items


def _csv_rows(path: str):
    """KQAItems of an OpenCompass `trivia-*.qa.csv`, one per row, read lazily."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            # csv's default dialect (quote character '"') with tabs, as OpenCompass reads the file:
            # a question that starts with '"' is parsed the same way there and here.
            reader = csv.reader(f, delimiter="\t")
            for row in reader:
                yield _csv_item(row, f"line {reader.line_num}", path)
    except UnicodeDecodeError as e:
        raise DataError(f"{_WHAT} file '{path}' is not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save it as UTF-8") from None
    except csv.Error as e:
        raise DataError(f"{_WHAT} file '{path}' is not a readable tab-separated file ({e}); {_FIX}") from None
    except OSError as e:
        raise DataError(f"{_WHAT} file '{path}' cannot be read ({e.strerror}); check its permissions") from None


def _csv_item(row: List[str], where: str, path: str) -> KQAItem:
    if len(row) != 2:
        raise DataError(f"{_WHAT} file '{path}', {where}, has {len(row)} tab-separated fields, not 2; "
                        "each line must be question<TAB>['answer', ...] (the file has no header row)")
    question, literal = row
    try:
        answers = ast.literal_eval(literal)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        raise DataError(f"{_WHAT} file '{path}', {where}: the answers field {_clip(literal)!r} is not a "
                        "Python list literal; write it as ['answer', 'alias', ...] (the file has no "
                        "header row)") from None
    return _item(question, answers, where, path)


def _record_item(record: Any, where: str, path: str) -> KQAItem:
    question = field(record, "question", where, path, _WHAT, _FIX)
    answer = field(record, "answer", where, path, _WHAT, _FIX)
    if isinstance(answer, dict):
        # Hugging Face trivia_qa: the answer struct; both alias lists count as correct answers.
        aliases = field(answer, "aliases", where + " 'answer'", path, _WHAT, _FIX)
        normalized = field(answer, "normalized_aliases", where + " 'answer'", path, _WHAT, _FIX)
        if not all(isinstance(names, list) and all(isinstance(n, str) for n in names)
                   for names in (aliases, normalized)):
            raise DataError(f"{_WHAT} file '{path}', {where}: 'answer' 'aliases' and 'normalized_aliases' "
                            f"must be lists of strings; {_FIX}")
        answers = list(dict.fromkeys(aliases + normalized))
    else:
        answers = answer
    return _item(question, answers, where, path)


def _item(question: Any, answers: Any, where: str, path: str) -> KQAItem:
    if not isinstance(question, str):
        raise DataError(f"{_WHAT} file '{path}', {where}: the question is a {type(question).__name__}, "
                        f"not a string; {_FIX}")
    if not isinstance(answers, (list, tuple)) or not all(isinstance(a, str) for a in answers):
        raise DataError(f"{_WHAT} file '{path}', {where}: the answers must be a list of strings, "
                        f"got {_clip(repr(answers))}; {_FIX}")
    if not answers:
        raise DataError(f"{_WHAT} file '{path}', {where}, has no answers (the test split of trivia_qa "
                        "hides them); use the validation split or OpenCompass's trivia-dev.qa.csv")
    return KQAItem(question=question, answers=list(answers))


def _clip(text: str, width: int = 60) -> str:
    return text if len(text) <= width else text[:width] + "..."


# -- prompt ------------------------------------------------------------------------------------


def kqa_prompt(question: str) -> str:
    """The HUMAN text OpenCompass gives the model for `question`."""
    # OpenCompass fills the template with str.replace, field by field in the row's order (question,
    # then the answer column, blanked): braces stay, but a literal "{answer}" in a question goes.
    return KQA_HUMAN_TEMPLATE.replace("{question}", question).replace("{answer}", "")


# -- scoring -----------------------------------------------------------------------------------


def general_postprocess(text: str) -> str:
    """OpenCompass's `general_postprocess`: the first clause, without punctuation, articles or extra spaces."""
    # Only what precedes the first newline, period or comma counts: "Paris, France" -> "Paris".
    clause = _FIRST_CLAUSE_END.split(text, maxsplit=1)[0]
    words = _PUNCTUATION.sub("", clause)
    words = _ARTICLE.sub("", words)
    return _WHITESPACE.sub(" ", words).strip()


def postprocess(prediction: str) -> str:
    """The answer TriviaQAEvaluator reads from a model's output, lower-cased and normalized."""
    text = prediction.strip().partition("\n")[0].lower()
    # Each marker in turn: keep what follows its last occurrence (everything when it is absent).
    for marker in _ANSWER_MARKERS:
        text = text.rpartition(marker)[2]
    return general_postprocess(text.strip())


def answer_key(answer: str) -> str:
    """A reference answer as TriviaQAEvaluator compares it: normalized, then lower-cased."""
    return general_postprocess(answer).lower()


def is_correct(prediction: str, answers: Sequence[str]) -> bool:
    """Whether a processed answer occurs in the processed prediction, as TriviaQAEvaluator decides."""
    # A substring test, so "paris" is found in "paris france"; an answer that normalizes to "" (such
    # as "The") is found in every prediction, as in OpenCompass.
    answer_text = postprocess(prediction)
    return any(answer_key(answer) in answer_text for answer in answers)


def kqa_score(predictions: Sequence[str], items: Sequence[KQAItem]) -> float:
    """KQA: 100 × the share of raw model outputs that `is_correct` judges correct."""
    _check_pairs(predictions, items)
    correct = sum(is_correct(prediction, item.answers) for prediction, item in zip(predictions, items))
    return 100.0 * correct / len(items)


def _check_pairs(predictions: Sequence[str], items: Sequence[Any]) -> None:
    if len(predictions) != len(items):
        raise UserError(f"{len(predictions)} predictions for {len(items)} KQA items; "
                        "pass one prediction per item, in the items' order")
    if not items:
        raise UserError("no KQA items to score; load at least one with load_kqa")
    for number, prediction in enumerate(predictions, start=1):
        if not isinstance(prediction, str):
            raise UserError(f"KQA prediction {number} is a {type(prediction).__name__}, not a string; "
                            "pass the decoded model outputs")
