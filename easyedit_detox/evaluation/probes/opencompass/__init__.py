"""General performance as the SafeEdit paper measured it with OpenCompass: KQA and CSum.

- `kqa`: TriviaQA accuracy (the paper's KQA), scored as OpenCompass's `TriviaQAEvaluator` does.
- `csum`: XSum ROUGE-1 (the paper's CSum), scored as OpenCompass's `RougeEvaluator` does.
- `prompting`: the model input OpenCompass builds from a prompt template, for chat and base models.

Everything here is pure and model-free: items, prompts, post-processing and scores. This module
also holds the record reader both data loaders share (JSON, JSON Lines, parquet).
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable, Iterator, List, Optional, Tuple, Union

from easyedit_detox.core.errors import DataError, UserError

#: Suffixes `iter_records` reads, and the format each one means.
RECORD_SUFFIXES = {".json": "a JSON list of records", ".jsonl": "JSON Lines", ".parquet": "parquet"}


def check_limit(limit: Optional[int]) -> None:
    """Raise DataError unless `limit` is None or a positive whole number."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit must be a positive whole number or None, got {limit!r}; "
                        "pass e.g. limit=100 to use the first 100 records")


def check_file(path: Union[str, os.PathLike], what: str) -> str:
    """`path` as a string when it names an existing file; DataError naming it otherwise."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataError(f"{what} file '{path}' does not exist; pass the path of the data file")
    if os.path.isdir(path):
        raise DataError(f"{what} file '{path}' is a folder; pass the path of the data file inside it")
    return path


def iter_records(path: str, what: str) -> Iterator[Tuple[str, Any]]:
    """Yield `(where, record)` for each record of a JSON, JSON Lines or parquet file, lazily.

    `where` names the record for error messages ("line 3", "record 3"). A `.json` file that turns
    out to hold JSON Lines (what Hugging Face `Dataset.to_json` writes) is read as JSON Lines.
    """
    suffix = os.path.splitext(path)[1].lower()
    if suffix == ".jsonl":
        yield from _iter_json_lines(path, what)
    elif suffix == ".json":
        yield from _iter_json(path, what)
    elif suffix == ".parquet":
        yield from _iter_parquet(path, what)
    else:
        known = ", ".join(f"{s} ({fmt})" for s, fmt in RECORD_SUFFIXES.items())
        raise DataError(f"{what} file '{path}' has an unknown suffix {suffix or '(none)'!r}; "
                        f"use one of {known}")


def _read_text(path: str, what: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except UnicodeDecodeError as e:
        raise DataError(f"{what} file '{path}' is not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"{what} file '{path}' cannot be read ({e.strerror}); check its permissions") from None


def _iter_json(path: str, what: str) -> Iterator[Tuple[str, Any]]:
    text = _read_text(path, what)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            # Several top-level values: JSON Lines saved under a .json name.
            yield from _json_lines(text.splitlines(), path, what)
            return
        raise DataError(f"{what} file '{path}' is not valid JSON: {e.msg} at line {e.lineno}, "
                        f"column {e.colno}; fix the JSON there") from None
    if not isinstance(data, list):
        raise DataError(f"{what} file '{path}' must hold a JSON list of records at the top level, "
                        f"not a JSON {type(data).__name__}; wrap the records in [ ... ] or save them as .jsonl")
    for number, record in enumerate(data, start=1):
        yield f"record {number}", record


def _iter_json_lines(path: str, what: str) -> Iterator[Tuple[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            yield from _json_lines(f, path, what)
    except UnicodeDecodeError as e:
        raise DataError(f"{what} file '{path}' is not UTF-8 text ({e.reason} at byte {e.start}); "
                        "save it as UTF-8") from None
    except OSError as e:
        raise DataError(f"{what} file '{path}' cannot be read ({e.strerror}); check its permissions") from None


def _json_lines(lines, path: str, what: str) -> Iterator[Tuple[str, Any]]:
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{what} file '{path}', line {number}, is not valid JSON: {e.msg} at column "
                            f"{e.colno}; put one JSON object on each line") from None
        yield f"line {number}", record


def _iter_parquet(path: str, what: str) -> Iterator[Tuple[str, Any]]:
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise UserError(f"reading the parquet {what} file '{path}' needs pyarrow; "
                        "pip install pyarrow, or convert the file to JSON Lines") from None
    try:
        parquet = pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as e:
        raise DataError(f"{what} file '{path}' is not a readable parquet file ({e}); "
                        "pass a parquet file, or use the .json/.jsonl suffix for JSON") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            number += 1
            yield f"record {number}", record


def field(record: Any, key: str, where: str, path: str, what: str, fix: str) -> Any:
    """`record[key]`; DataError naming the file, the record and `fix` when absent or not a mapping."""
    if not isinstance(record, dict):
        raise DataError(f"{what} file '{path}', {where}, is a {type(record).__name__}, not an object "
                        f"with keys; {fix}")
    if key not in record:
        raise DataError(f"{what} file '{path}', {where}, has no {key!r} field "
                        f"(it has {sorted(record)!r}); {fix}")
    return record[key]


def take(items: Iterable[Any], limit: Optional[int]) -> List[Any]:
    """The first `limit` of `items` (all when None), reading no further."""
    out: List[Any] = []
    for item in items:
        if limit is not None and len(out) >= limit:
            break
        out.append(item)
    return out
