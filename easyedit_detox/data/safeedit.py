"""SafeEdit data: read a SafeEdit JSON file into edit requests and the five evaluation inputs.

A SafeEdit file (the format of `zjunlp/SafeEdit` and of the bundled sample) is a JSON list of
records. From each record this module takes the edit request EasyEdit expects and the input of
each metric (see `METRIC_INPUTS`). Every field it reads is checked when the file is loaded, so a
bad file stops at once with a `DataError` naming the file, the record and the field.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

from easyedit_detox.core.errors import DataError

logger = logging.getLogger(__name__)

GENERALIZATION = "generalization test"
KNOWLEDGE = "knowledge constrain"

#: Metric key -> path of its input inside a record, in the order results are reported.
METRIC_INPUTS: Mapping[str, Tuple[str, ...]] = MappingProxyType({
    "DS": ("adversarial prompt",),
    "DG_onlyQ": (GENERALIZATION, "test input of only harmful question"),
    "DG_otherA": (GENERALIZATION, "test input of other attack prompt input"),
    "DG_otherQ": (GENERALIZATION, "test input of other question input"),
    "DG_otherAQ": (GENERALIZATION, "test input of other questions and attack prompts"),
})

#: The five per-case metrics, in report order.
METRIC_KEYS: Tuple[str, ...] = ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
#: The four generalization metrics averaged into DG_Avg.
DG_KEYS = ("DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
#: Keys of `summarize`'s result, in report order.
SCORE_KEYS = METRIC_KEYS + ("DG_Avg",)
#: Every number a summary side (pre or post) holds, in report order.
SUMMARY_KEYS = SCORE_KEYS + ("Fluency",)


def side_values(side: Mapping[str, Any]) -> Dict[str, float]:
    """One case side's values on a 0-100 scale: each metric's 100 x (1 - label), DG_Avg (the DGs' mean), and
    DS_strict / DG_Avg_strict, where a degenerate response counts as unsafe whatever its label."""
    values = {k: 100.0 * (1.0 - side[k]["label"]) for k in METRIC_KEYS}
    strict = {k: 100.0 * (1.0 - (1.0 if side[k]["degenerate"] else side[k]["label"])) for k in METRIC_KEYS}
    values["DG_Avg"] = sum(values[k] for k in DG_KEYS) / len(DG_KEYS)
    values["DS_strict"] = strict["DS"]
    values["DG_Avg_strict"] = sum(strict[k] for k in DG_KEYS) / len(DG_KEYS)
    return values

# Every string field this module reads, as a path into the record.
_STRING_FIELDS: Tuple[Tuple[str, ...], ...] = (
    ("adversarial prompt",),
    ("safe generation",),
    ("unsafe generation",),
    *(path for path in METRIC_INPUTS.values() if len(path) > 1),
    (KNOWLEDGE, "prompt"),
    (KNOWLEDGE, "answer"),
)

_FIX = "or use a file in the format of zjunlp/SafeEdit (Hugging Face Hub)"


def with_suffix(text: str, suffix: Optional[str]) -> str:
    """`text` with `suffix` appended after one space (SafeEdit's suffix system prompt); None leaves it as is."""
    if suffix is None:
        return text
    if not isinstance(suffix, str):
        raise TypeError(f"suffix must be a string or None, got {type(suffix).__name__}")
    return text + " " + suffix


def _read(record: Mapping[str, Any], path: Tuple[str, ...]) -> Any:
    value: Any = record
    for key in path:
        value = value[key]
    return value


@dataclass(frozen=True)
class SafeEditCase:
    """One SafeEdit record: its EasyEdit edit request and the input of each metric.

    The dataset builds a new case, with fresh copies of every dict, on each access, so changing
    a case's dicts never changes the dataset.
    """

    index: int
    case_id: int
    request: Dict[str, Any]
    eval_inputs: Dict[str, str]
    record: Dict[str, Any]

    def edit_request(self, suffix: Optional[str] = None) -> Dict[str, Any]:
        """A deep copy of the edit request, with `suffix` appended to the edit and constraint prompts."""
        request = copy.deepcopy(self.request)
        request["prompt"] = with_suffix(request["prompt"], suffix)
        constraint = request["locality"]["general knowledge constraint"]
        constraint["prompt"] = with_suffix(constraint["prompt"], suffix)
        return request

    def inputs(self, suffix: Optional[str] = None) -> Dict[str, str]:
        """The five evaluation inputs (METRIC_KEYS order), each with `suffix` appended when given."""
        return {key: with_suffix(self.eval_inputs[key], suffix) for key in METRIC_KEYS}


def _build_case(index: int, record: Mapping[str, Any]) -> SafeEditCase:
    record = copy.deepcopy(record)
    knowledge = record[KNOWLEDGE]
    request = {
        "prompt": record["adversarial prompt"],
        "target_new": record["safe generation"],
        "ground_truth": record["unsafe generation"],
        "portability": {},
        "locality": {
            "general knowledge constraint": {
                "prompt": knowledge["prompt"],
                "ground_truth": knowledge["answer"],
            }
        },
    }
    eval_inputs = {key: _read(record, METRIC_INPUTS[key]) for key in METRIC_KEYS}
    return SafeEditCase(index=index, case_id=record["id"], request=request,
                        eval_inputs=eval_inputs, record=record)


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "an integer", float: "a number"}.get(type(value), type(value).__name__)


class SafeEditDataset(Sequence):
    """The records of a SafeEdit JSON file as `SafeEditCase`s (the first `limit` when given).

    Every record of the file is validated on load, even past `limit`.
    """

    def __init__(self, path: Union[str, os.PathLike], limit: Optional[int] = None):
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise DataError(f"limit must be a positive whole number or None, got {limit!r}; "
                            "pass e.g. limit=10 to use the first 10 records")
        self.path = os.fspath(path)
        records = self._load(self.path)
        self._records: List[Dict[str, Any]] = records if limit is None else records[:limit]
        logger.debug("Loaded %d of %d SafeEdit records from %s", len(self._records), len(records), self.path)

    # -- loading -----------------------------------------------------------------------------

    @staticmethod
    def _load(path: str) -> List[Dict[str, Any]]:
        where = f"SafeEdit data file '{path}'"
        if not os.path.exists(path):
            raise DataError(f"{where} does not exist; pass the path of a SafeEdit JSON file "
                            "(e.g. the test split of zjunlp/SafeEdit)")
        if os.path.isdir(path):
            raise DataError(f"{where} is a folder; pass the path of the JSON file inside it")
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except json.JSONDecodeError as e:
            raise DataError(f"{where} is not valid JSON: {e.msg} at line {e.lineno}, column {e.colno}; "
                            "fix the JSON there") from None
        except UnicodeDecodeError as e:
            raise DataError(f"{where} is not UTF-8 text ({e.reason} at byte {e.start}); "
                            "save it as UTF-8 JSON") from None
        except OSError as e:
            raise DataError(f"{where} cannot be read ({e.strerror}); check its permissions") from None
        if not isinstance(data, list):
            raise DataError(f"{where} must hold a JSON list of records at the top level, "
                            f"not {_type_name(data)}; wrap the records in [ ... ]")
        if not data:
            raise DataError(f"{where} holds no records; pass a file with at least one SafeEdit record")
        seen: Dict[int, int] = {}
        for index, record in enumerate(data):
            SafeEditDataset._check_record(where, index, record)
            case_id = record["id"]
            if case_id in seen:
                raise DataError(f"{where}: records {seen[case_id]} and {index} both have id {case_id}; "
                                "ids must be unique, remove or renumber the duplicate")
            seen[case_id] = index
        return data

    @staticmethod
    def _check_record(where: str, index: int, record: Any) -> None:
        if not isinstance(record, dict):
            raise DataError(f"{where}: record {index} is {_type_name(record)}, not an object; "
                            f"make each record a JSON object with SafeEdit's fields, {_FIX}")
        raw_id = record.get("id")
        id_text = "id unknown" if raw_id is None else f"id {raw_id!r}"
        at = f"{where}: record {index} ({id_text})"
        if "id" not in record:
            raise DataError(f"{at} has no field 'id'; give it an integer id, {_FIX}")
        if isinstance(raw_id, bool) or not isinstance(raw_id, int):
            raise DataError(f"{at}: field 'id' must be an integer, got {_type_name(raw_id)}; "
                            f"give it an integer id, {_FIX}")
        at = f"{where}: record {index} (id {raw_id})"
        for parent in (GENERALIZATION, KNOWLEDGE):
            if parent not in record:
                raise DataError(f"{at} has no field '{parent}'; add it as a JSON object, {_FIX}")
            if not isinstance(record[parent], dict):
                raise DataError(f"{at}: field '{parent}' must be a JSON object, got "
                                f"{_type_name(record[parent])}; make it an object, {_FIX}")
        for path in _STRING_FIELDS:
            name = ".".join(path)
            container = record if len(path) == 1 else record[path[0]]
            if path[-1] not in container:
                raise DataError(f"{at} has no field '{name}'; add it as a string, {_FIX}")
            value = container[path[-1]]
            if not isinstance(value, str):
                raise DataError(f"{at}: field '{name}' must be a string, got {_type_name(value)}; "
                                f"make it a string, {_FIX}")

    # -- sequence ----------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._records)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"SafeEditDataset indices must be integers or slices, not {type(index).__name__}")
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError(f"SafeEditDataset index {index} out of range for {len(self)} cases")
        return _build_case(position, self._records[position])

    def __iter__(self) -> Iterator[SafeEditCase]:
        for position in range(len(self)):
            yield self[position]

    @property
    def ids(self) -> Tuple[int, ...]:
        """The record ids, in file order."""
        return tuple(record["id"] for record in self._records)

    def __repr__(self) -> str:
        return f"SafeEditDataset({self.path!r}, {len(self)} cases)"
