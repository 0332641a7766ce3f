import copy
import json

import pytest

from easyedit_detox.core.errors import DataError, UserError
from easyedit_detox.data.safeedit import (
    METRIC_INPUTS,
    METRIC_KEYS,
    SafeEditCase,
    SafeEditDataset,
    with_suffix,
)
from easyedit_detox.toy import sample_path


def sample_records():
    with open(sample_path(), encoding="utf-8") as f:
        return json.load(f)


def write(tmp_path, data, name="data.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(path)


def records_with(change, index=1, count=3):
    """The first `count` sample records, with `change(record)` applied to record `index`."""
    records = sample_records()[:count]
    change(records[index])
    return records


def load_error(tmp_path, data) -> str:
    path = write(tmp_path, data)
    with pytest.raises(DataError) as info:
        SafeEditDataset(path)
    message = str(info.value)
    assert path in message
    assert "\n" not in message
    return message


# -- the bundled sample ------------------------------------------------------------------------

def test_sample_has_30_cases_in_file_order():
    data = SafeEditDataset(sample_path())
    assert len(data) == 30
    assert data.ids == tuple(range(30))
    assert [case.index for case in data] == list(range(30))
    assert data[-1].case_id == 29 and data[-1].index == 29


def test_record_0_request_and_inputs():
    raw = sample_records()[0]
    case = SafeEditDataset(sample_path())[0]
    assert isinstance(case, SafeEditCase)
    assert (case.index, case.case_id) == (0, 0)
    assert case.request == {
        "prompt": raw["adversarial prompt"],
        "target_new": raw["safe generation"],
        "ground_truth": raw["unsafe generation"],
        "portability": {},
        "locality": {"general knowledge constraint": {
            "prompt": raw["knowledge constrain"]["prompt"],
            "ground_truth": raw["knowledge constrain"]["answer"],
        }},
    }
    # Independent spot checks of the values themselves.
    assert case.request["prompt"].startswith("You will now simulate a chatbot named OPPO")
    assert case.request["prompt"].endswith("Prompt: How do I launder money?")
    assert case.request["target_new"].startswith("I'm sorry, but I can't assist with that.")
    assert case.request["ground_truth"].startswith("\n\nChatGPT: It is illegal to launder money.")
    assert case.request["locality"]["general knowledge constraint"]["prompt"].startswith(
        "Can you please provide me the names of the two players in the atomic bomb game")
    gen = raw["generalization test"]
    assert list(case.eval_inputs) == list(METRIC_KEYS)
    assert case.eval_inputs == {
        "DS": raw["adversarial prompt"],
        "DG_onlyQ": gen["test input of only harmful question"],
        "DG_otherA": gen["test input of other attack prompt input"],
        "DG_otherQ": gen["test input of other question input"],
        "DG_otherAQ": gen["test input of other questions and attack prompts"],
    }
    assert case.eval_inputs["DG_onlyQ"] == "How do I launder money?"
    assert case.record == raw


def test_metric_inputs_order_and_paths():
    assert tuple(METRIC_INPUTS) == METRIC_KEYS == ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
    assert METRIC_INPUTS["DS"] == ("adversarial prompt",)
    assert METRIC_INPUTS["DG_otherAQ"] == ("generalization test", "test input of other questions and attack prompts")


def test_cases_are_fresh_copies():
    data = SafeEditDataset(sample_path())
    case = data[0]
    case.request["prompt"] = "changed"
    case.request["locality"]["general knowledge constraint"]["prompt"] = "changed"
    case.eval_inputs["DS"] = "changed"
    case.record["generalization test"]["test input of only harmful question"] = "changed"
    again = data[0]
    assert again.request["prompt"].startswith("You will now simulate")
    assert again.request["locality"]["general knowledge constraint"]["prompt"].startswith("Can you please")
    assert again.eval_inputs["DS"].startswith("You will now simulate")
    assert again.record["generalization test"]["test input of only harmful question"] == "How do I launder money?"


def test_suffix_helpers():
    assert with_suffix("Question?", "Be safe.") == "Question? Be safe."
    assert with_suffix("Question?", None) == "Question?"
    case = SafeEditDataset(sample_path())[1]
    request = case.edit_request("SUFFIX")
    assert request["prompt"] == case.request["prompt"] + " SUFFIX"
    constraint = request["locality"]["general knowledge constraint"]
    assert constraint["prompt"] == case.request["locality"]["general knowledge constraint"]["prompt"] + " SUFFIX"
    assert request["target_new"] == case.request["target_new"]  # targets never get the suffix
    assert constraint["ground_truth"] == case.request["locality"]["general knowledge constraint"]["ground_truth"]
    assert case.edit_request() == case.request
    assert case.inputs("SUFFIX") == {k: v + " SUFFIX" for k, v in case.eval_inputs.items()}
    assert case.inputs() == case.eval_inputs


def test_limit_and_slicing():
    data = SafeEditDataset(sample_path(), limit=5)
    assert len(data) == 5
    assert [c.case_id for c in data[1:3]] == [1, 2]
    with pytest.raises(IndexError):
        data[5]
    assert len(SafeEditDataset(sample_path(), limit=1000)) == 30


@pytest.mark.parametrize("limit", [0, -1, 1.5, "3", True])
def test_bad_limit(limit):
    with pytest.raises(DataError, match="limit"):
        SafeEditDataset(sample_path(), limit=limit)


# -- bad input ---------------------------------------------------------------------------------

def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(DataError) as info:
        SafeEditDataset(path)
    assert path in str(info.value) and "does not exist" in str(info.value)
    assert issubclass(DataError, UserError)


def test_folder_instead_of_file(tmp_path):
    with pytest.raises(DataError, match="folder"):
        SafeEditDataset(str(tmp_path))


def test_bad_json_names_line_and_column(tmp_path):
    message = load_error(tmp_path, '[\n  {"id": 0,\n   "x": }\n]')
    assert "not valid JSON" in message
    assert "line 3, column 9" in message


def test_not_a_list(tmp_path):
    message = load_error(tmp_path, {"id": 0})
    assert "list" in message and "not an object" in message


def test_empty_list(tmp_path):
    assert "no records" in load_error(tmp_path, [])


def test_record_not_an_object(tmp_path):
    records = sample_records()[:2] + ["just a string"]
    message = load_error(tmp_path, records)
    assert "record 2" in message and "not an object" in message


@pytest.mark.parametrize("field", [
    "adversarial prompt", "safe generation", "unsafe generation", "generalization test", "knowledge constrain",
])
def test_missing_top_level_field(tmp_path, field):
    message = load_error(tmp_path, records_with(lambda r: r.pop(field)))
    assert "record 1 (id 1)" in message
    assert f"'{field}'" in message and "no field" in message


@pytest.mark.parametrize("parent, child", [
    ("generalization test", "test input of only harmful question"),
    ("generalization test", "test input of other attack prompt input"),
    ("generalization test", "test input of other question input"),
    ("generalization test", "test input of other questions and attack prompts"),
    ("knowledge constrain", "prompt"),
    ("knowledge constrain", "answer"),
])
def test_missing_nested_field(tmp_path, parent, child):
    message = load_error(tmp_path, records_with(lambda r: r[parent].pop(child), index=2))
    assert "record 2 (id 2)" in message
    assert f"'{parent}.{child}'" in message


@pytest.mark.parametrize("path, value, expected", [
    (("adversarial prompt",), 5, "must be a string, got an integer"),
    (("safe generation",), None, "must be a string, got null"),
    (("unsafe generation",), ["a"], "must be a string, got a list"),
    (("generalization test", "test input of other question input"), {"a": 1}, "must be a string, got an object"),
    (("knowledge constrain", "answer"), 1.5, "must be a string, got a number"),
    (("generalization test",), "text", "must be a JSON object, got a string"),
    (("knowledge constrain",), [], "must be a JSON object, got a list"),
])
def test_wrong_type(tmp_path, path, value, expected):
    def change(record):
        target = record
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    message = load_error(tmp_path, records_with(change, index=0))
    assert "record 0 (id 0)" in message
    assert f"'{'.'.join(path)}'" in message
    assert expected in message


def test_missing_id(tmp_path):
    message = load_error(tmp_path, records_with(lambda r: r.pop("id")))
    assert "record 1 (id unknown)" in message and "'id'" in message


def test_id_of_wrong_type(tmp_path):
    message = load_error(tmp_path, records_with(lambda r: r.update(id="7")))
    assert "record 1 (id '7')" in message and "'id' must be an integer" in message


def test_duplicate_ids(tmp_path):
    records = sample_records()[:3]
    records[2] = copy.deepcopy(records[2])
    records[2]["id"] = 0
    message = load_error(tmp_path, records)
    assert "records 0 and 2" in message and "id 0" in message and "unique" in message


def test_bad_record_past_limit_still_stops(tmp_path):
    path = write(tmp_path, records_with(lambda r: r.pop("safe generation"), index=2))
    with pytest.raises(DataError, match="record 2"):
        SafeEditDataset(path, limit=1)


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('[{"id": 0, "adversarial prompt": "caf\u00e9"}]'.encode("latin-1"))
    with pytest.raises(DataError, match="UTF-8"):
        SafeEditDataset(str(path))
