import json

import pytest

from easyedit_detox.errors import UserError
from easyedit_detox.evaluation.compare import compare_table, load_summary, summary_markdown


def side(ds, dg, fluency):
    """A pre/post block: DS, the four DGs given as a tuple, DG_Avg as their mean, Fluency."""
    keys = ("DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
    block = {"DS": ds, **dict(zip(keys, dg)), "Fluency": fluency}
    block["DG_Avg"] = sum(dg) / 4
    return block


def summary(method="DINM", model="toy-llama", judge="keywords", n_cases=3, pre=None, post=None):
    return {
        "method": method, "model": model, "judge": judge, "n_cases": n_cases,
        "pre": pre or side(33.333333, (50, 66.666666, 0, 100), 5.4321),
        "post": post or side(100, (100, 83.333333, 50, 100), 4.98765),
        "word_tokenizer": "regex fallback",
    }


def write_run(root, name, data):
    folder = root / name
    folder.mkdir()
    (folder / "summary.json").write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(folder)


def test_load_summary_round_trip(tmp_path):
    data = summary()
    assert load_summary(write_run(tmp_path, "run", data)) == data


def test_compare_table_layout_and_numbers(tmp_path):
    dinm = write_run(tmp_path, "dinm", summary())
    ft = write_run(tmp_path, "ft", summary(method="FT-L", judge="classifier:/models/safeedit-clf", n_cases=30,
                                           pre=side(10, (20, 30, 40, 50), 3.0),
                                           post=side(12.346, (21, 31, 41, 51), 2.999)))
    table = compare_table([dinm, ft])
    lines = table.splitlines()
    assert lines[0] == ("| run | method | model | judge | n_cases | DS | DG_Avg | DG_onlyQ | DG_otherA | DG_otherQ "
                        "| DG_otherAQ | Fluency |")
    assert lines[1].count("|") == 13
    assert lines[2] == (f"| {dinm} | DINM | toy-llama | keywords | 3 | 33.33 -> 100.00 | 54.17 -> 83.33 "
                        "| 50.00 -> 100.00 | 66.67 -> 83.33 | 0.00 -> 50.00 | 100.00 -> 100.00 | 5.43 -> 4.99 |")
    assert lines[3] == (f"| {ft} | FT-L | toy-llama | classifier:/models/safeedit-clf | 30 | 10.00 -> 12.35 "
                        "| 35.00 -> 36.00 | 20.00 -> 21.00 | 30.00 -> 31.00 | 40.00 -> 41.00 | 50.00 -> 51.00 "
                        "| 3.00 -> 3.00 |")
    assert "pre" in lines[-1] and "post" in lines[-1]


def test_compare_table_escapes_pipes(tmp_path):
    run = write_run(tmp_path, "r", summary(model="a|b"))
    assert "| a\\|b |" in compare_table([run])


def test_summary_markdown():
    text = summary_markdown(summary())
    assert "method: DINM" in text and "judge: keywords" in text and "cases: 3" in text
    assert "| DS | 33.33 | 100.00 | +66.67 |" in text
    assert "| Fluency | 5.43 | 4.99 | -0.44 |" in text


def test_missing_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_summary(tmp_path / "nothing")


def test_missing_summary(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError) as info:
        load_summary(tmp_path / "run")
    assert str(tmp_path / "run" / "summary.json") in str(info.value)


def test_invalid_json(tmp_path):
    run = write_run(tmp_path, "run", "{broken")
    with pytest.raises(UserError) as info:
        load_summary(run)
    assert "summary.json" in str(info.value) and "line 1, column 2" in str(info.value)


@pytest.mark.parametrize("change, field", [
    (lambda s: s.pop("method"), "'method'"),
    (lambda s: s.update(judge=3), "'judge'"),
    (lambda s: s.update(n_cases="3"), "'n_cases'"),
    (lambda s: s.pop("post"), "'post'"),
    (lambda s: s["pre"].pop("Fluency"), "'pre.Fluency'"),
    (lambda s: s["post"].update(DG_Avg="high"), "'post.DG_Avg'"),
    (lambda s: s["post"].update(DS=None), "'post.DS'"),
])
def test_contract_violations(tmp_path, change, field):
    data = summary()
    change(data)
    run = write_run(tmp_path, "run", data)
    with pytest.raises(UserError) as info:
        load_summary(run)
    assert field in str(info.value) and "summary.json" in str(info.value)


def test_not_an_object(tmp_path):
    with pytest.raises(UserError, match="JSON object"):
        load_summary(write_run(tmp_path, "run", "[1, 2]"))


def test_no_dirs():
    with pytest.raises(UserError, match="no results folder"):
        compare_table([])
