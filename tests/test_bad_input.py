"""Every bad input the command line accepts gets one line naming the thing and the fix, and exit status 2."""

import json
import types

import pytest

from easyedit_detox.cli import main
from easyedit_detox.toy import sample_path
from test_cli import evaluate_args, write_hparams

LATIN1 = "caf\xe9 ol\xe9".encode("latin-1")  # not UTF-8


def bad_inputs(tmp, model_dir):
    """(name, argv, a phrase the one-line message must hold) for each bad input."""
    h = write_hparams(tmp, model_dir)
    (tmp / "benign.jsonl").write_bytes(b'{"prompt": "' + LATIN1 + b'"}\n')
    (tmp / "latin1.yaml").write_bytes(b"alg_name: DINM\nmodel_name: " + LATIN1 + b"\n")
    (tmp / "latin1.json").write_bytes(b'[{"id": 0, "x": "' + LATIN1 + b'"}]')
    (tmp / "broken.json").write_text('[{"id": 0,')
    (tmp / "a-file").write_text("not a folder")
    out = tmp / "out"

    def ev(*extra, hparams=h, data=sample_path()):
        return evaluate_args(hparams, data, out, "--cases", "3", *extra)

    return [
        ("non-UTF-8 --benign", ev("--general-cases", "1", "--benign", str(tmp / "benign.jsonl")), "not UTF-8 text"),
        ("non-UTF-8 hparams", ev(hparams=str(tmp / "latin1.yaml")), "not UTF-8 text"),
        ("non-UTF-8 data", ev(data=str(tmp / "latin1.json")), "not UTF-8 text"),
        ("broken JSON data", ev(data=str(tmp / "broken.json")), "not valid JSON"),
        ("missing data", ev(data=str(tmp / "missing.json")), "does not exist"),
        ("missing hparams", ev(hparams=str(tmp / "missing.yaml")), "does not exist"),
        ("--checkpoint-every without --sequential", ev("--checkpoint-every", "2"), "add --sequential"),
        ("unknown case id", evaluate_args(h, sample_path(), out, "--cases", "4242"), "4242"),
        ("missing --benign", ev("--general-cases", "1", "--benign", str(tmp / "none.jsonl")), "does not exist"),
        ("missing judge folder", ev("--judge", f"classifier:{tmp / 'no-judge'}"), "no-judge"),
        ("--model that names nothing", ev("--model", str(tmp / "no-model")), "no such folder"),
        ("--device that is no device", ev("--device", "tpu"), "--device 'tpu'"),
        ("--out that is a file", evaluate_args(h, sample_path(), tmp / "a-file", "--cases", "3"), "a-file"),
        ("--generation easyedit with chat", ev("--generation", "easyedit", "--prompt-format", "chat"), "raw"),
    ]


def test_each_bad_input_gets_one_line_and_exit_2(tiny_llama_dir, tmp_path, capsys):
    failures = []
    for name, argv, phrase in bad_inputs(tmp_path, tiny_llama_dir):
        code = main(argv)
        err = capsys.readouterr().err.strip()
        if code != 2 or len(err.splitlines()) != 1 or phrase not in err or "Traceback" in err:
            failures.append((name, code, err[-400:]))
    assert not failures, json.dumps(failures, indent=1)


def test_a_model_whose_config_does_not_say_its_layers_is_refused_with_the_fix():
    from easyedit_detox.dinm.locate import num_layers
    from easyedit_detox.core.errors import UserError

    with pytest.raises(UserError, match=r"layers: \[N\]"):
        num_layers(types.SimpleNamespace(config=types.SimpleNamespace(hidden_size=8)))
    assert num_layers(types.SimpleNamespace(config=types.SimpleNamespace(n_layer=3))) == 3
