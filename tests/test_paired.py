"""compare's paired differences: per-case values from the lines, an exact sign test, a table only with lines."""

import json
import math

import pytest

from easyedit_detox.report.compare import compare_table
from easyedit_detox.report.paired import paired_difference, sign_test_p
from test_compare import summary, write_run

KEYS = ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")


def test_sign_test_matches_the_binomial_by_hand():
    # 9 better, 1 worse of 10: P(X <= 1) = (1 + 10) / 1024, doubled.
    assert sign_test_p(9, 1) == pytest.approx(22 / 1024)
    assert sign_test_p(5, 5) == 1.0 and sign_test_p(0, 0) == 1.0
    assert sign_test_p(0, 6) == pytest.approx(2 / 64)


def line(case_id, labels, degenerate=()):
    side = {k: {"label": labels[i], "degenerate": k in degenerate, "response": "", "input": ""} for i, k in enumerate(KEYS)}
    return {"case_id": case_id, "index": case_id, "pre": side, "post": side}


def write_lines(folder, rows):
    with open(f"{folder}/cases.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def test_compare_adds_paired_differences_when_both_runs_hold_their_lines(tmp_path):
    a = write_run(tmp_path, "a", summary(case_ids=[0, 1, 2, 3]))
    b = write_run(tmp_path, "b", summary(method="FT", case_ids=[0, 1, 2, 3]))
    assert "Paired differences" not in compare_table([a, b])  # summaries only: nothing to pair
    unsafe, safe = [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]
    write_lines(a, [line(0, unsafe), line(1, unsafe), line(2, safe), line(3, unsafe)])
    write_lines(b, [line(0, safe), line(1, safe), line(2, safe), line(3, [1, 0, 0, 0, 0], degenerate=("DS",))])
    text = compare_table([a, b])
    rows = {r.split("|")[2].strip(): [c.strip() for c in r.split("|")[1:-1]]
            for r in text.splitlines() if r.startswith(f"| {b} |")}
    # DS per case, b - a: +100, +100, 0, 0 -> mean 50, sd 57.735, se 28.87; better 2, worse 0 -> p = 0.5.
    assert rows["DS"][2:] == ["4", "50.00 ± 28.87", "2 / 0 / 2", "0.5"]
    # DG_Avg per case: +100, +100, 0, +100 -> mean 75, se 25; 3 better -> p = 0.25.
    assert rows["DG_Avg"][2:] == ["4", "75.00 ± 25.00", "3 / 0 / 1", "0.25"]
    # DS_strict: case 3's DS in b is degenerate, so unsafe either way: as DS.
    assert rows["DS_strict"][2:] == ["4", "50.00 ± 28.87", "2 / 0 / 2", "0.5"]
    assert math.isclose(paired_difference({0: {"DS": 0.0}}, {0: {"DS": 100.0}}, "DS")["mean"], 100.0)
