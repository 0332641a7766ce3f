"""`compare`: the summary.json contract, the comparability rule, the Markdown table, LaTeX, CSV and plots."""

import csv
import json
import os
import struct
import subprocess
import sys

import pytest

from easyedit_detox.core.errors import UserError
from easyedit_detox.report.comparability import Difference, check_comparable
from easyedit_detox.report.compare import compare_table, run_compare, write_csv, write_latex
from easyedit_detox.report.summaries import GENERATION_KEYS_NOT_AFFECTING_RESPONSES, load_summary
from easyedit_detox.report.tables import summary_markdown

DGS = ("DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def side(ds, dg, fluency, **extra):
    """A pre/post block: DS, the four DGs given as a tuple, DG_Avg as their mean, Fluency, extras."""
    return {"DS": ds, **dict(zip(DGS, dg)), "DG_Avg": sum(dg) / 4, "Fluency": fluency, **extra}


def summary(method="DINM", model="toy-llama", judge="keywords", n_cases=3, pre=None, post=None, **fields):
    """A summary.json object as the evaluation writes it, with `fields` added or replaced."""
    data = {
        "method": method, "model": model, "judge": judge, "n_cases": n_cases,
        "data": "/data/SafeEdit_test.json", "data_sha256": "0123456789abcdef", "case_ids": [0, 1, 2],
        "generation": {"protocol": "greedy", "max_length": 2048, "max_output_length": 600, "batch_size": 8},
        "pre": side(33.333333, (50, 66.666666, 0, 100), 5.4321) if pre is None else pre,
        "post": side(100, (100, 83.333333, 50, 100), 4.98765) if post is None else post,
        "fluency_tokenizer": "regex fallback",
    }
    data.update(fields)
    return data


def write_run(root, name, data):
    """A results folder `root/name` holding `data` (an object, or text as is) as summary.json."""
    folder = root / name
    folder.mkdir()
    (folder / "summary.json").write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return str(folder)


def two_runs(tmp_path, **ft_fields):
    """A DINM run and an FT-L run on the same data, judge, generation and cases (unless `ft_fields` say otherwise)."""
    dinm = write_run(tmp_path, "dinm", summary())
    ft = write_run(tmp_path, "ft", summary(method="FT-L", pre=side(10, (20, 30, 40, 50), 3.0),
                                           post=side(12.346, (21, 31, 41, 51), 2.999), **ft_fields))
    return dinm, ft


# -- load_summary ------------------------------------------------------------------------------

def test_load_summary_round_trip(tmp_path):
    data = summary(sequential=[{"after_edits": 1, "DS": 50.0, "DS_edited_so_far": 100.0}])
    assert load_summary(write_run(tmp_path, "run", data)) == data


def test_older_summary_without_comparison_fields_loads(tmp_path):
    data = summary()
    for key in ("data", "data_sha256", "case_ids", "generation"):
        data.pop(key)
    assert load_summary(write_run(tmp_path, "run", data)) == data


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
    (lambda s: s.update(n_cases=True), "'n_cases'"),
    (lambda s: s.pop("post"), "'post'"),
    (lambda s: s["pre"].pop("Fluency"), "'pre.Fluency'"),
    (lambda s: s["pre"].pop("DG_otherAQ"), "'pre.DG_otherAQ'"),
    (lambda s: s["post"].update(DG_Avg="high"), "'post.DG_Avg'"),
    (lambda s: s["post"].update(DS=None), "'post.DS'"),
    (lambda s: s["post"].update(DS=float("nan")), "'post.DS'"),
    (lambda s: s["post"].update(KQA=None), "'post.KQA'"),  # a metric that did not run is absent, not null
    (lambda s: s.update(data_sha256=123), "'data_sha256'"),
    (lambda s: s.update(case_ids=[0, "1"]), "'case_ids'"),
    (lambda s: s.update(generation="greedy"), "'generation'"),
    (lambda s: s.update(sequential={"after_edits": 1}), "'sequential'"),
    (lambda s: s.update(sequential=[{"after_edits": 1.5, "DS": 3}]), "'sequential[0].after_edits'"),
    (lambda s: s.update(sequential=[{"after_edits": 1, "DS": 3}, {"after_edits": 2}]), "'sequential[1].DS'"),
])
def test_contract_violations(tmp_path, change, field):
    data = summary()
    change(data)
    run = write_run(tmp_path, "run", data)
    with pytest.raises(UserError) as info:
        load_summary(run)
    message = str(info.value)
    assert field in message and "summary.json" in message and len(message.splitlines()) == 1


def test_not_an_object(tmp_path):
    with pytest.raises(UserError, match="JSON object"):
        load_summary(write_run(tmp_path, "run", "[1, 2]"))


def test_no_dirs():
    with pytest.raises(UserError, match="no results folder"):
        compare_table([])


# -- the Markdown table ------------------------------------------------------------------------

LEGEND = ("Each metric cell: vanilla model (pre) -> edited model (post); –: not measured. DS and DG_* are defense "
          "success rates in % (higher is safer); Fluency is n-gram entropy.")


def test_compare_table_layout_and_numbers(tmp_path):
    dinm, ft = two_runs(tmp_path)
    assert compare_table([dinm, ft]).splitlines() == [
        "judge: keywords | prompt format: raw | data: SafeEdit_test.json (sha256 0123456789abcdef) | n: 3 cases | "
        "model: toy-llama",
        "",
        "| run | method | model | DS | DG_onlyQ | DG_otherA | DG_otherQ | DG_otherAQ | DG_Avg | Fluency |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
        f"| {dinm} | DINM | toy-llama | 33.33 -> 100.00 | 50.00 -> 100.00 | 66.67 -> 83.33 | 0.00 -> 50.00 "
        "| 100.00 -> 100.00 | 54.17 -> 83.33 | 5.43 -> 4.99 |",
        f"| {ft} | FT-L | toy-llama | 10.00 -> 12.35 | 20.00 -> 21.00 | 30.00 -> 31.00 | 40.00 -> 41.00 "
        "| 50.00 -> 51.00 | 35.00 -> 36.00 | 3.00 -> 3.00 |",
        "",
        LEGEND,
    ]


def test_extra_metrics_in_fixed_order_and_missing_ones_as_dash(tmp_path):
    base = (50, 50, 50, 50)
    a = write_run(tmp_path, "a", summary(pre=side(10, base, 5, Zeta=1, KQA=40, DS_strict=9),
                                         post=side(90, base, 5, Zeta=2, KQA=41, DS_strict=80)))
    b = write_run(tmp_path, "b", summary(method="FT", pre=side(10, base, 5, OverRefusal=2, Alpha=7),
                                         post=side(20, base, 5, OverRefusal=30)))
    lines = compare_table([a, b]).splitlines()
    assert lines[2].endswith("| Fluency | KQA | OverRefusal | DS_strict | Alpha | Zeta |")
    assert lines[4].endswith("| 5.00 -> 5.00 | 40.00 -> 41.00 | – | 9.00 -> 80.00 | – | 1.00 -> 2.00 |")
    assert lines[5].endswith("| 5.00 -> 5.00 | – | 2.00 -> 30.00 | – | 7.00 -> – | – |")


def test_compare_table_escapes_pipes(tmp_path):
    run = write_run(tmp_path, "r", summary(model="a|b"))
    assert "| a\\|b |" in compare_table([run])


def test_one_run_is_its_own_comparison(tmp_path):
    run = write_run(tmp_path, "r", summary())
    assert compare_table(run).splitlines()[0].startswith("judge: keywords | prompt format: raw | data: SafeEdit_test.json")


def test_summary_markdown():
    text = summary_markdown(summary(pre=side(33.333333, (50, 66.666666, 0, 100), 5.4321, KQA=40),
                                    post=side(100, (100, 83.333333, 50, 100), 4.98765)))
    lines = text.splitlines()
    assert lines[0] == "method: DINM | model: toy-llama | judge: keywords | prompt format: raw | cases: 3"
    assert lines[2:4] == ["| metric | pre | post | change |", "| --- | ---: | ---: | ---: |"]
    assert lines[4] == "| DS | 33.33 | 100.00 | +66.67 |"
    assert lines[9] == "| DG_Avg | 54.17 | 83.33 | +29.17 |"
    assert lines[10] == "| Fluency | 5.43 | 4.99 | -0.44 |"
    assert lines[11] == "| KQA | 40.00 | – | – |"
    assert len(lines) == 12


def test_summary_markdown_of_a_run_without_cases():
    text = summary_markdown(summary(n_cases=0, pre={}, post={}))
    assert "| DS | – | – | – |" in text


# -- the comparability rule --------------------------------------------------------------------

@pytest.mark.parametrize("fields, needle", [
    ({"data_sha256": "fedcba9876543210"}, 'data_sha256: "0123456789abcdef" in {dinm}; "fedcba9876543210" in {ft}'),
    ({"judge": "classifier:/models/clf"}, 'judge: "keywords" in {dinm}; "classifier:/models/clf" in {ft}'),
    ({"generation": {"protocol": "easyedit", "max_length": 2048, "max_output_length": 600}},
     'generation.protocol: "greedy" in {dinm}; "easyedit" in {ft}'),
    ({"generation": {"protocol": "greedy", "max_length": 2048, "max_output_length": 600, "top_k": 5}},
     'generation.top_k: "absent" in {dinm}; 5 in {ft}'),
    ({"case_ids": [4, 6, 7]}, "case_ids: [0, 1, 2] in {dinm}; [4, 6, 7] in {ft}"),
    ({"prompt_format": "chat"}, 'prompt_format: "raw" in {dinm}; "chat" in {ft}'),
    ({"case_ids": None}, "case_ids: [0, 1, 2] in {dinm}; unknown in {ft}"),
])
def test_refusal_names_the_field_and_both_runs(tmp_path, fields, needle):
    dinm, ft = two_runs(tmp_path, **fields)
    if fields.get("case_ids", 0) is None:  # an older summary without the field
        data = json.loads((tmp_path / "ft" / "summary.json").read_text())
        data.pop("case_ids")
        (tmp_path / "ft" / "summary.json").write_text(json.dumps(data))
    with pytest.raises(UserError) as info:
        compare_table([dinm, ft])
    message = str(info.value)
    assert len(message.splitlines()) == 1
    assert message.startswith("runs are not comparable")
    assert needle.format(dinm=dinm, ft=ft) in message
    assert "--force" in message


def test_batch_size_and_case_order_do_not_count(tmp_path):
    assert GENERATION_KEYS_NOT_AFFECTING_RESPONSES == {"batch_size", "cases_per_batch"}
    generation = {"protocol": "greedy", "max_length": 2048, "max_output_length": 600, "cases_per_batch": 4}
    dinm, ft = two_runs(tmp_path, generation=generation, case_ids=[2, 0, 1])
    assert "FT-L" in compare_table([dinm, ft])


def test_unknown_counts_as_a_difference(tmp_path):
    old = summary()
    del old["data_sha256"], old["generation"]
    a = write_run(tmp_path, "a", old)
    b = write_run(tmp_path, "b", dict(old, method="FT"))
    differences = check_comparable([load_summary(a), load_summary(b)], [a, b])
    assert [d.field for d in differences] == ["data_sha256", "generation"]
    assert str(differences[0]) == f"data_sha256: unknown in {a}, {b}"


def test_long_case_id_lists_are_abridged_but_compared_in_full():
    every = list(range(30))
    most = [6 if i == 5 else i for i in every]  # abridges like `every`: same length, start and end
    (difference,) = check_comparable([summary(case_ids=every), summary(method="FT", case_ids=every),
                                      summary(method="MEND", case_ids=list(range(40)))])
    assert str(difference) == "case_ids: [0, 1, 2, …, 29] (30 ids) in DINM, FT; [0, 1, 2, …, 39] (40 ids) in MEND"
    (difference,) = check_comparable([summary(case_ids=every), summary(method="FT", case_ids=most)])
    assert str(difference) == f"case_ids: {json.dumps(every)} in DINM; {json.dumps(most)} in FT"


def test_check_comparable_groups_runs_by_value():
    runs = [summary(method="A"), summary(method="B"), summary(method="C", judge="classifier")]
    assert check_comparable(runs) == [Difference("judge", (('"keywords"', ("A", "B")), ('"classifier"', ("C",))))]
    assert check_comparable(runs[:2]) == []
    assert check_comparable(runs[:1]) == []


def test_force_sets_them_side_by_side_with_a_note(tmp_path):
    dinm, ft = two_runs(tmp_path, judge="classifier", case_ids=[4, 6, 7])
    lines = compare_table([dinm, ft], force=True).splitlines()
    assert lines[0].startswith("judge: keywords / classifier | ")
    assert lines[4].startswith(f"| {dinm} | DINM |") and lines[5].startswith(f"| {ft} | FT-L |")
    assert lines[-1] == ("Note: set side by side with --force although the runs differ in "
                         f'judge: "keywords" in {dinm}; "classifier" in {ft}; '
                         f"case_ids: [0, 1, 2] in {dinm}; [4, 6, 7] in {ft}.")


# -- LaTeX and CSV -----------------------------------------------------------------------------

def test_latex_table(tmp_path):
    runs = [summary(method="FT_L & co", pre=side(10, (20, 30, 40, 50), 3.0, KQA=40.0),
                    post=side(12.346, (21, 31, 41, 51), 2.999, KQA=38.5)),
            summary(method="DINM")]
    path = write_latex(runs, tmp_path / "table.tex")
    text = (tmp_path / "table.tex").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert path == str(tmp_path / "table.tex")
    assert lines[0] == ("% SafeEdit, model toy-llama; data SafeEdit_test.json (sha256 0123456789abcdef); "
                        "judge keywords; n = 3 cases; cells: vanilla (pre) -> edited (post).")
    assert lines[2] == "\\begin{tabular}{lcccccccc}"
    assert lines[3] == "\\toprule" and lines[5] == "\\midrule" and lines[-2:] == ["\\bottomrule", "\\end{tabular}"]
    assert lines[4] == ("Method & DS & DG\\_onlyQ & DG\\_otherA & DG\\_otherQ & DG\\_otherAQ & DG\\_Avg & Fluency "
                        "& KQA \\\\")
    assert lines[6].startswith("FT\\_L \\& co & 10.00 $\\rightarrow$ 12.35 & ")
    assert lines[7].endswith("& 5.43 $\\rightarrow$ 4.99 & -- \\\\")
    for row in (lines[4], lines[6], lines[7]):
        assert row.replace("\\&", "").count("&") == 8


def test_latex_table_with_two_models_has_a_model_column(tmp_path):
    write_latex([summary(), summary(model="other_model")], tmp_path / "t.tex")
    lines = (tmp_path / "t.tex").read_text().splitlines()
    assert lines[0].startswith("% SafeEdit, models toy-llama, other_model;")
    row = next(line for line in lines if line.startswith("DINM & other\\_model & "))
    assert row.count("&") == 8


def test_csv(tmp_path):
    runs = [summary(pre=side(10, (20, 30, 40, 50), 3.0, KQA=40.0), post=side(12.346, (21, 31, 41, 51), 2.999)),
            summary(method="FT-L", judge="classifier")]
    write_csv(runs, tmp_path / "runs.csv")
    with open(tmp_path / "runs.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["method", "model", "judge", "n_cases", "data_sha256", "side", "DS", *DGS, "DG_Avg",
                             "Fluency", "KQA"]
    assert [(r["method"], r["side"], r["judge"]) for r in rows] == [
        ("DINM", "pre", "keywords"), ("DINM", "post", "keywords"), ("FT-L", "pre", "classifier"),
        ("FT-L", "post", "classifier")]
    assert rows[0]["n_cases"] == "3" and rows[0]["data_sha256"] == "0123456789abcdef"
    assert float(rows[1]["DS"]) == 12.346 and float(rows[0]["DG_Avg"]) == 35.0 and float(rows[1]["Fluency"]) == 2.999
    assert rows[0]["KQA"] == "40.0" and rows[1]["KQA"] == "" and rows[2]["KQA"] == ""
    assert float(rows[2]["DG_otherA"]) == 66.666666


# -- plots -------------------------------------------------------------------------------------

def png_size(path):
    """Width and height in pixels from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == PNG_SIGNATURE and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_plot_bars(tmp_path):
    pytest.importorskip("matplotlib")
    from easyedit_detox.report.plots import DPI, bar_figure, plot_bars

    runs = [summary(pre=side(10, (20, 30, 40, 50), 3.0, KQA=40.0), post=side(80, (21, 31, 41, 51), 2.9)),
            summary(method="FT-L"), summary(method="MEND")]
    fig = bar_figure(runs)
    percent, fluency = fig.axes
    # DS, four DGs, DG_Avg and KQA: per run a pre and a post bar.
    assert [t.get_text() for t in percent.get_xticklabels()] == ["DS", *DGS, "DG_Avg", "KQA"]
    assert sum(len(c) for c in percent.containers) == 3 * 2 * 7 == len(percent.patches)
    assert sum(len(c) for c in fluency.containers) == 3 * 2
    pre, post = percent.containers[:2]
    assert pre.patches[0].get_hatch() == "//" and post.patches[0].get_hatch() is None
    assert pre.patches[0].get_alpha() < 1 and post.patches[0].get_height() == 80
    assert "toy-llama" in fig._suptitle.get_text() and "keywords" in fig._suptitle.get_text()
    assert "n = 3" in fig._suptitle.get_text()

    path = plot_bars(runs, tmp_path / "bars.png")
    data = (tmp_path / "bars.png").read_bytes()
    assert path == str(tmp_path / "bars.png") and data.startswith(PNG_SIGNATURE) and b"matplotlib" in data
    width, height = fig.get_size_inches()
    assert png_size(tmp_path / "bars.png") == (round(width * DPI), round(height * DPI))
    assert sorted(os.listdir(tmp_path)) == ["bars.png"]  # no temporary file left behind


def test_plot_sequential(tmp_path):
    pytest.importorskip("matplotlib")
    from easyedit_detox.report.plots import plot_sequential, sequential_figure

    steps = [{"after_edits": k, "DS": 100 - k, "DS_edited_so_far": 100.0} for k in (4, 1, 2)]
    runs = [summary(sequential=steps), summary(method="FT-L"),
            summary(method="MEND", sequential=[{"after_edits": 1, "DS": 50.0}])]
    (ax,) = sequential_figure(runs).axes
    lines = ax.get_lines()
    assert [(line.get_label(), line.get_linestyle()) for line in lines] == [
        ("DINM DS", "-"), ("DINM DS on cases edited so far", "--"), ("MEND DS", "-")]
    assert list(lines[0].get_xdata()) == [1, 2, 4] and list(lines[0].get_ydata()) == [99, 98, 96]
    plot_sequential(runs, tmp_path / "seq.png")
    assert (tmp_path / "seq.png").read_bytes().startswith(PNG_SIGNATURE)
    with pytest.raises(UserError, match="sequential"):
        sequential_figure([summary()])


# -- run_compare -------------------------------------------------------------------------------

def test_run_compare_writes_every_file(tmp_path):
    pytest.importorskip("matplotlib")
    dinm, ft = two_runs(tmp_path, sequential=[{"after_edits": 1, "DS": 50.0}, {"after_edits": 2, "DS": 40.0}])
    out = tmp_path / "out"
    out.mkdir()
    text = run_compare([dinm, ft], latex=out / "t.tex", csv=out / "t.csv", plot=out / "fig.png")
    assert text.startswith("judge: keywords | ")
    assert text.splitlines()[-1] == (f"Wrote LaTeX table: {out / 't.tex'}; CSV: {out / 't.csv'}; bar plot: "
                                     f"{out / 'fig.png'}; sequential-editing plot: {out / 'fig-sequential.png'}.")
    assert sorted(os.listdir(out)) == ["fig-sequential.png", "fig.png", "t.csv", "t.tex"]
    assert (out / "fig-sequential.png").read_bytes().startswith(PNG_SIGNATURE)


def test_run_compare_without_sequential_results_writes_one_plot(tmp_path):
    pytest.importorskip("matplotlib")
    dinm, ft = two_runs(tmp_path)
    text = run_compare([dinm, ft], plot=tmp_path / "fig.png")
    assert "sequential" not in text and (tmp_path / "fig.png").exists()
    assert not (tmp_path / "fig-sequential.png").exists()


def test_run_compare_checks_every_path_before_writing(tmp_path):
    dinm, ft = two_runs(tmp_path)
    with pytest.raises(UserError, match="does not exist"):
        run_compare([dinm, ft], latex=tmp_path / "t.tex", csv=tmp_path / "missing" / "t.csv")
    with pytest.raises(UserError, match=r"\.png"):
        run_compare([dinm, ft], latex=tmp_path / "t.tex", plot=tmp_path / "fig.jpg")
    assert not (tmp_path / "t.tex").exists()


def test_run_compare_refuses_like_compare_table(tmp_path):
    dinm, ft = two_runs(tmp_path, judge="classifier")
    with pytest.raises(UserError, match="--force"):
        run_compare([dinm, ft], csv=tmp_path / "t.csv")
    assert not (tmp_path / "t.csv").exists()
    assert "Note: set side by side with --force" in run_compare([dinm, ft], force=True, csv=tmp_path / "t.csv")


# -- import cost -------------------------------------------------------------------------------

def python(code):
    """What a fresh Python process running `code` prints, split into words."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_compare_module_itself_imports_neither_torch_nor_matplotlib():
    # The package `easyedit_detox.report` is replaced by an empty one, so that this measures compare.py and
    # what it imports, whatever the package's __init__ imports.
    code = ("import importlib.util, os, sys, types\n"
            "root = os.path.dirname(importlib.util.find_spec('easyedit_detox').origin)\n"
            "pkg = types.ModuleType('easyedit_detox.report')\n"
            "pkg.__path__ = [os.path.join(root, 'report')]\n"
            "sys.modules['easyedit_detox.report'] = pkg\n"
            "import easyedit_detox.report.compare\n"
            "print(*(m in sys.modules for m in ('torch', 'matplotlib', 'numpy', 'yaml', 'transformers')))")
    assert python(code) == ["False"] * 5


def test_compare_import_leaves_matplotlib_for_the_plots():
    code = "import sys\nimport easyedit_detox.report.compare\nprint('matplotlib' in sys.modules)"
    assert python(code) == ["False"]


def test_compare_refuses_runs_scored_differently_and_names_the_difference(tmp_path):
    from easyedit_detox.core.errors import UserError

    base = dict(general={"cases": 2, "items": 3, "states": [0, 2],
                         "probes": {"OverRefusal": {"data": "SafeEdit knowledge-constraint instructions", "items": 3,
                                                    "detector": "keywords (refusal phrase present)",
                                                    "items_sha256": "aaaa"}}},
                degenerate_rule="rule-1", suffix_system_prompt="Please give the right response:")
    dinm = write_run(tmp_path, "dinm", summary(**base))
    other_items = json.loads(json.dumps(base))
    other_items["general"]["probes"]["OverRefusal"]["items_sha256"] = "bbbb"
    cases = [("items", write_run(tmp_path, "items", summary(**other_items)), "general.OverRefusal"),
             ("rule", write_run(tmp_path, "rule", summary(**{**base, "degenerate_rule": "rule-2"})), "degenerate_rule"),
             ("words", write_run(tmp_path, "words", summary(**base, fluency_tokenizer="nltk punkt")), "fluency_tokenizer"),
             ("suffix", write_run(tmp_path, "suffix", summary(**{**base, "suffix_system_prompt": "Be safe."})),
              "suffix_system_prompt")]
    for name, folder, field in cases:
        with pytest.raises(UserError, match=field):
            compare_table([dinm, folder])
        assert f"the runs differ in {field}" in compare_table([dinm, folder], force=True)  # said in the table
    # An FT run without a suffix and without general probes still compares with DINM, as in the paper.
    ft = write_run(tmp_path, "ft", summary(method="FT", degenerate_rule="rule-1"))
    assert "FT" in compare_table([dinm, ft])
