"""--model and --device: one hparams file evaluated, applied and trained on another checkpoint or device."""

import json
import os

import pytest

from easyedit_detox.cli import main
from easyedit_detox.toy import sample_path
from test_cli import comparable, evaluate_args, write_hparams


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_evaluate_on_another_checkpoint_equals_a_yaml_that_names_it(tiny_llama_dir, tmp_path, capsys):
    named = write_hparams(tmp_path, tiny_llama_dir, name="named.yaml")
    elsewhere = write_hparams(tmp_path, str(tmp_path / "not-downloaded"), name="elsewhere.yaml")
    assert main(evaluate_args(named, sample_path(), tmp_path / "named", "--cases", "3,5")) == 0
    assert main(evaluate_args(elsewhere, sample_path(), tmp_path / "over", "--cases", "3,5",
                              "--model", tiny_llama_dir, "--device", "cpu")) == 0
    assert comparable(tmp_path / "over") == comparable(tmp_path / "named")
    with open(tmp_path / "over" / "run.json") as f:
        run = json.load(f)
    assert run["model"] == tiny_llama_dir and run["overrides"] == {"model_name": tiny_llama_dir, "device": "cpu"}
    with open(tmp_path / "named" / "run.json") as f:
        assert "overrides" not in json.load(f)  # folders without overrides read as before
    # Resuming with other overrides is another run: refused, naming what differs.
    assert main(evaluate_args(elsewhere, sample_path(), tmp_path / "over", "--cases", "3,5",
                              "--model", tiny_llama_dir)) == 2
    assert "overrides" in one_line_error(capsys)


@pytest.mark.parametrize("extra, expected", [
    (["--model", "/nonexistent/checkpoint"], "--model '/nonexistent/checkpoint': no such folder"),
    (["--device", "tpu"], "--device 'tpu': use cpu, cuda, cuda:N"),
    (["--device", "cuda:0"], "no CUDA GPU is visible"),
])
def test_bad_overrides_get_one_line_and_exit_2(tiny_llama_dir, tmp_path, capsys, extra, expected):
    import torch

    if "cuda:0" in extra and torch.cuda.is_available():
        pytest.skip("a GPU is visible here")
    h = write_hparams(tmp_path, tiny_llama_dir)
    assert main(evaluate_args(h, sample_path(), tmp_path / "out", "--cases", "3", *extra)) == 2
    assert expected in one_line_error(capsys)
    assert not os.path.exists(tmp_path / "out" / "cases.jsonl")


def test_device_contradicting_model_parallel_is_refused(tiny_llama_dir, tmp_path, capsys):
    h = write_hparams(tmp_path, tiny_llama_dir, model_parallel=True)
    assert main(evaluate_args(h, sample_path(), tmp_path / "out", "--cases", "3", "--device", "cpu")) == 2
    assert "model_parallel: true" in one_line_error(capsys)


def test_apply_on_another_checkpoint_names_it_in_the_patch(tiny_llama_dir, tmp_path, capsys):
    from safetensors import safe_open

    h = write_hparams(tmp_path, str(tmp_path / "not-downloaded"))
    patch = tmp_path / "detox.safetensors"
    assert main(["apply", "--hparams", h, "--data", sample_path(), "--cases", "3", "--patch", str(patch),
                 "--no-progress", "--model", tiny_llama_dir]) == 0
    with safe_open(str(patch), "pt") as f:
        metadata = f.metadata()
    assert tiny_llama_dir in json.dumps(metadata) and "not-downloaded" not in json.dumps(metadata)


def test_train_mend_refuses_a_missing_checkpoint_before_writing(tmp_path, capsys):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    folder = os.path.join(root, "hparams", "TRAINING", "MEND")
    name = sorted(n for n in os.listdir(folder) if n.endswith(".yaml"))[0]
    out = tmp_path / "mend"
    assert main(["train-mend", "--hparams", os.path.join(folder, name), "--train", sample_path(), "--val",
                 sample_path(), "--out", str(out), "--model", "/nonexistent/checkpoint"]) == 2
    assert "--model '/nonexistent/checkpoint'" in one_line_error(capsys)
    assert not out.exists()
