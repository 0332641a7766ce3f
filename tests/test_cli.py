"""The command line: evaluate, compare, one-line errors with exit status 2, and a two-process split."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from easyedit_detox.cli import main
from easyedit_detox.toy import sample_path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def write_hparams(tmp_path, model_dir, name="h.yaml", **changes):
    with open(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml")) as f:
        raw = yaml.safe_load(f)
    raw.update(model_name=model_dir, device="cpu", tokenizer_class="AutoTokenizer", max_length=320,
               max_output_length=10, lr=2e-2, num_steps=2)
    for key, value in changes.items():
        if value is None:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw))
    return str(path)


def evaluate_args(hparams, data, out, *extra):
    return ["evaluate", "--hparams", hparams, "--data", data, "--out", str(out), "--no-progress",
            "--cache", str(out) + "-cache", "--general-cases", "0", *extra]


def comparable(folder):
    with open(os.path.join(folder, "cases.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    for row in rows:
        row["edit"].pop("seconds")
    return rows


def test_evaluate_then_compare(tiny_llama_dir, tmp_path, capsys):
    h = write_hparams(tmp_path, tiny_llama_dir)
    h2 = write_hparams(tmp_path, tiny_llama_dir, name="h2.yaml", lr=5e-2)
    assert main(evaluate_args(h, sample_path(), tmp_path / "a", "--cases", "4,6")) == 0
    out = capsys.readouterr().out
    assert "DINM on" in out and "judge keywords" in out and "| DS |" in out
    assert main(evaluate_args(h2, sample_path(), tmp_path / "b", "--cases", "4,6")) == 0
    assert [r["case_id"] for r in comparable(tmp_path / "b")] == [4, 6]
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    text = capsys.readouterr().out
    table, paired = text.split("Paired differences")
    rows = [line for line in table.splitlines() if line.startswith(f"| {tmp_path}")]
    assert [line.split("|")[2].strip() for line in paired.splitlines()
            if line.startswith(f"| {tmp_path / 'b'}")] == ["DS", "DG_Avg", "DS_strict"]
    summaries = []
    for name in ("a", "b"):
        with open(tmp_path / name / "summary.json") as f:
            summaries.append(json.load(f))
    # One row per run, each with that run's own numbers.
    assert len(rows) == 2
    for row, summary in zip(rows, summaries):
        cells = [c.strip() for c in row.strip("|").split("|")]
        pre, post = summary["pre"], summary["post"]
        assert cells[1] == "DINM" and cells[3] == (f"{pre['DS']:.2f} ± {pre['DS_stderr']:.2f} -> "
                                                   f"{post['DS']:.2f} ± {post['DS_stderr']:.2f}")


def test_compare_refuses_runs_on_different_cases_in_one_line(tiny_llama_dir, tmp_path, capsys):
    h = write_hparams(tmp_path, tiny_llama_dir)
    assert main(evaluate_args(h, sample_path(), tmp_path / "a", "--cases", "1")) == 0
    assert main(evaluate_args(h, sample_path(), tmp_path / "b", "--cases", "2")) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "case_ids" in err and "--force" in err
    assert main(["compare", "--force", str(tmp_path / "a"), str(tmp_path / "b")]) == 0


def bad_inputs(tmp_path, model_dir):
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('[{"id": 0,\n  "question": }]')
    return {
        "missing data": (write_hparams(tmp_path, model_dir), str(tmp_path / "nope.json"), [], "does not exist"),
        "data not JSON": (write_hparams(tmp_path, model_dir), str(bad_json), [], "line 2, column"),
        "missing model folder": (write_hparams(tmp_path, str(tmp_path / "no-model"), name="nomodel.yaml"), sample_path(), [],
                                 "does not exist"),
        "judge not a classifier": (write_hparams(tmp_path, model_dir), sample_path(),
                                   ["--judge", f"classifier:{model_dir}"], "classifier"),
        "unknown judge": (write_hparams(tmp_path, model_dir), sample_path(), ["--judge", "vibes"], "Available"),
        "hparams missing a key": (write_hparams(tmp_path, model_dir, name="nolr.yaml", lr=None), sample_path(), [],
                                  "missing key(s) ['lr']"),
        "hparams file missing": (str(tmp_path / "none.yaml"), sample_path(), [], "does not exist"),
        "unknown case id": (write_hparams(tmp_path, model_dir), sample_path(), ["--cases", "99"], "99"),
    }


@pytest.mark.parametrize("name", ["missing data", "data not JSON", "missing model folder", "judge not a classifier",
                                  "unknown judge", "hparams missing a key", "hparams file missing", "unknown case id"])
def test_bad_input_exits_2_with_one_line_and_no_summary(tiny_llama_dir, tmp_path, capsys, name):
    hparams, data, extra, needle = bad_inputs(tmp_path, tiny_llama_dir)[name]
    out = tmp_path / "out"
    assert main(evaluate_args(hparams, data, out, *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("easyedit-detox: error:") and needle in err
    assert not (out / "summary.json").exists()


def test_compare_of_a_folder_without_summary_exits_2(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "summary.json" in capsys.readouterr().err


def test_two_processes_equal_one(tiny_llama_dir, tmp_path):
    h = write_hparams(tmp_path, tiny_llama_dir)
    args = lambda out: [sys.executable, "-m", "easyedit_detox.cli"] + evaluate_args(h, sample_path(), out, "--limit", "4",
                                                                                  "--cases-per-batch", "1")
    assert main(args(tmp_path / "one")[3:]) == 0
    env = dict(os.environ, WORLD_SIZE="2", OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(args(tmp_path / "two"), env=dict(env, RANK=str(r)), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert comparable(tmp_path / "two") == comparable(tmp_path / "one")
    with open(tmp_path / "one" / "summary.json") as f, open(tmp_path / "two" / "summary.json") as g:
        one, two = json.load(f), json.load(g)
        assert {**one, "time": None} == {**two, "time": None}  # wall seconds differ by nature
    assert sorted(os.listdir(tmp_path / "two")) == ["cases.jsonl", "general.jsonl", "run.json", "summary.json",
                                                    "summary.md"]


def test_help_and_compare_import_no_heavy_library(tmp_path):
    """`--help`, `evaluate --help` and `compare` answer without importing easyeditor, torch or transformers
    (what makes them answer at once; the time itself is not asserted: these machines' speed varies)."""
    from test_compare import summary, write_run

    exe = os.path.join(os.path.dirname(sys.executable), "easyedit-detox")
    run_dir = write_run(tmp_path, "run", summary())
    code = ("import sys\nfrom easyedit_detox.cli import main\n"
            "try:\n    main(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('easyeditor', 'torch', 'transformers') if m in sys.modules))")
    for args in (["--help"], ["evaluate", "--help"], ["compare", run_dir]):
        proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert proc.stdout.strip().splitlines()[-1] == "[]", (args, proc.stdout[-500:], proc.stderr[-500:])


def test_python_dash_m_is_the_console_script(tmp_path):
    """`python -m easyedit_detox` answers as `easyedit-detox` does: same help, same one-line error and exit 2."""
    exe = os.path.join(os.path.dirname(sys.executable), "easyedit-detox")
    missing = str(tmp_path / "missing.json")
    for args in (["--help"], ["compare", missing]):
        script = subprocess.run([exe, *args], capture_output=True, text=True, timeout=60)
        module = subprocess.run([sys.executable, "-m", "easyedit_detox", *args], capture_output=True, text=True,
                                timeout=60)
        assert (module.returncode, module.stdout, module.stderr) == (script.returncode, script.stdout, script.stderr)
    assert module.returncode == 2 and len(module.stderr.strip().splitlines()) == 1 and missing in module.stderr


def test_a_method_that_cannot_edit_safeedit_requests_is_refused_before_any_work(tmp_path, capsys):
    rome = tmp_path / "rome.yaml"
    rome.write_text("alg_name: ROME\nmodel_name: /nonexistent/model\n")
    out = tmp_path / "out"
    assert main(["evaluate", "--hparams", str(rome), "--data", sample_path(), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'ROME' cannot edit SafeEdit requests" in err and "subject" in err
    assert not out.exists()
