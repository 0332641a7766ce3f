"""The demo compares DINM, FT-L and LoRA on the toy model, and never deletes a folder it did not create."""

import json
import os

from easyedit_detox.cli import main
from test_cli import evaluate_args, write_hparams


def test_demo_leaves_a_finished_evaluation_intact(tiny_llama_dir, tmp_path, capsys):
    from easyedit_detox.toy import sample_path

    finished = tmp_path / "results" / "dinm-llama2"
    assert main(evaluate_args(write_hparams(tmp_path, tiny_llama_dir), sample_path(), finished, "--limit", "1")) == 0
    before = {name: (finished / name).read_bytes() for name in os.listdir(finished)}
    capsys.readouterr()
    assert main(["demo", "--toy", "--out", str(finished), "--records", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "was not written by the demo" in err
    assert {name: (finished / name).read_bytes() for name in os.listdir(finished)} == before


def test_demo_compares_three_methods_and_reruns_in_its_own_folder(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--toy", "--out", str(out), "--records", "2"]) == 0
    text = capsys.readouterr().out
    table = text.split("Paired differences")[0]  # the paired table's rows also start with the folders
    rows = [line for line in table.splitlines() if line.startswith(f"| {out}")]
    assert [row.split("|")[2].strip() for row in rows] == ["DINM", "FT", "LoRA"]
    header = next(line for line in text.splitlines() if line.startswith("| run |"))
    for column in ("DS", "DG_Avg", "Fluency", "OverRefusal", "Degenerate", "DS_strict", "DG_Avg_strict"):
        assert f" {column} " in header
    assert "judge: keywords" in text and "n: 2 cases" in text
    # The printed cells are the folders' lines, recomputed here: DS and DG_Avg from each case's labels,
    # Degenerate from each response's flag ("pre -> post" per cell).
    columns = [c.strip() for c in header.split("|")]
    keys = ("DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
    for row, folder in zip(rows, ("dinm", "ft-l", "lora")):
        cells = dict(zip(columns, (c.strip() for c in row.split("|"))))
        with open(out / folder / "cases.jsonl") as f:
            lines = [json.loads(line) for line in f]
        for side, position in (("pre", 0), ("post", 1)):
            score = lambda key: 100 - 100 * sum(line[side][key]["label"] for line in lines) / len(lines)  # noqa: E731
            expected = {"DS": score("DS"), "DG_Avg": sum(score(k) for k in keys[1:]) / 4,
                        "Degenerate": 100 * sum(line[side][k]["degenerate"] for line in lines for k in keys)
                        / (5 * len(lines))}
            for column, value in expected.items():
                shown = float(cells[column].split("->")[position].split("±")[0])
                assert abs(shown - value) < 0.006, (folder, side, column, shown, value)
    with open(out / "compare.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    (out / "dinm" / "stale.txt").write_text("left by an earlier demo run inside its own folder")
    user_file = out / "my-notes.txt"
    user_file.write_text("mine")
    assert main(["demo", "--toy", "--out", str(out), "--cases", "1"]) == 0  # its own folder: redone
    with open(out / "dinm" / "summary.json") as f:
        assert json.load(f)["n_cases"] == 1
    assert user_file.read_text() == "mine"  # what the demo did not write stays
