"""MEND meta-trained on SafeEdit with easyeditor's trainer: checkpoint, editing, resume, refusal (CPU, tiny models)."""

import contextlib
import json
import os

import pytest
import torch
import yaml

from easyedit_detox import toy
from easyedit_detox.core.errors import UserError
from easyedit_detox.data.safeedit import SafeEditDataset
from easyedit_detox.methods import mend_training
from easyedit_detox.methods.mend_training import CHECKPOINT, train_mend

# MEND hooks the edited modules; torch warns when their inputs need no gradient (frozen layers below).
pytestmark = pytest.mark.filterwarnings("ignore:Full backward hook is firing")

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEPS = 4


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    """4 bundled SafeEdit records as the training split, the next 2 as the validation split."""
    with open(toy.sample_path(), encoding="utf-8") as f:
        records = json.load(f)
    folder = tmp_path_factory.mktemp("safeedit")
    paths = {}
    for name, part in (("train", records[:4]), ("val", records[4:6])):
        paths[name] = str(folder / f"SafeEdit_{name}.json")
        with open(paths[name], "w", encoding="utf-8") as f:
            json.dump(part, f)
    return paths


def tiny_yaml(kind, folder, out_path, training, **changes):
    """tests/data/mend-tiny-<kind>[-training].yaml pointing at `folder`, with `changes`, written to `out_path`."""
    name = f"mend-tiny-{kind}{'-training' if training else ''}.yaml"
    with open(os.path.join(DATA, name), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config.update(model_name=folder, tokenizer_name=folder, **changes)
    with open(out_path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)
    return str(out_path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """Per kind: the tiny model folder (named so easyeditor recognises it) and its training YAML."""
    made = {}
    for kind in ("llama", "gpt2"):
        root = tmp_path_factory.mktemp(f"mend_{kind}")
        folder = toy.save_tiny(str(root / f"tiny-{kind}"), kind)
        made[kind] = (folder, tiny_yaml(kind, folder, root / "training.yaml", training=True))
    return made


@pytest.fixture(scope="module")
def trained(tiny, splits, tmp_path_factory):
    """Per kind: the checkpoint of an uninterrupted run of STEPS steps."""
    out = {}
    for kind in ("llama", "gpt2"):
        out_dir = str(tmp_path_factory.mktemp(f"run_{kind}"))
        out[kind] = train_mend(tiny[kind][1], splits["train"], splits["val"], out_dir, max_steps=STEPS,
                               progress=False)
    return out


def load_checkpoint(path):
    return torch.load(path, map_location="cpu", weights_only=True)  # as PyPI's MendRewriteExecutor loads it


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_checkpoint_has_the_trainer_format(trained, kind):
    checkpoint = load_checkpoint(trained[kind])
    assert os.path.basename(trained[kind]) == CHECKPOINT
    assert {"model", "opt", "lr_opt", "val_stats", "start_time", "elapsed_time", "step"} <= set(checkpoint)
    assert checkpoint["step"] == STEPS and "loss/total_edit_val" in checkpoint["val_stats"]
    assert "edit_lrs" in checkpoint["model"] and any(k.startswith("mend.") for k in checkpoint["model"])
    assert not any(k.startswith("model.") for k in checkpoint["model"])  # the hypernetwork only
    with open(os.path.join(os.path.dirname(trained[kind]), "run.json")) as f:
        assert json.load(f)["step"] == STEPS


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_checkpoint_edits_a_model_through_alg_dict(trained, tiny, kind, tmp_path, load_tiny, monkeypatch):
    from easyeditor.models.mend.mend_main import MendRewriteExecutor

    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.methods.device_scope import hparams_on_device, on_device
    from easyedit_detox.easyedit.upstream import PYPI, alg_dict, flavour

    folder = tiny[kind][0]
    hparams = load_hparams(tiny_yaml(kind, folder, tmp_path / "edit.yaml", training=False, archive=trained[kind]))
    model, tok = load_tiny(folder)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token  # the executor pads its batch
    before = {n: p.detach().clone() for n, p in model.named_parameters() if n in hparams.inner_params}
    # PyPI's ALG_DICT["MEND"] is one executor that keeps the first model it saw: a fresh one per model.
    monkeypatch.setitem(alg_dict(), "MEND", MendRewriteExecutor().apply_to_model)
    request = SafeEditDataset(toy.sample_path(), limit=8)[7].edit_request()
    # PyPI's executor writes cuda:{device} by hand; git's reads hparams.device (and its isinstance checks
    # on torch.device do not survive on_device's torch stand-in).
    scope = on_device("cpu") if flavour() == PYPI else contextlib.nullcontext()
    with scope:
        edited, _ = alg_dict()["MEND"](model, tok, [request], hparams_on_device(hparams, "cpu"))
    after = dict(edited.named_parameters())
    assert set(before) == set(hparams.inner_params)
    for name, old in before.items():
        assert not torch.equal(old, after[name]), name
        assert torch.isfinite(after[name]).all()


def test_interrupted_training_resumes_to_the_same_checkpoint(trained, tiny, splits, tmp_path, monkeypatch):
    from easyeditor.trainer import EditTrainer

    original, calls = EditTrainer.train_step, []

    def interrupted(self, batch):
        calls.append(self.global_iter)
        if len(calls) > 2:
            raise KeyboardInterrupt
        return original(self, batch)

    out_dir = str(tmp_path / "run")
    monkeypatch.setattr(EditTrainer, "train_step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_mend(tiny["llama"][1], splits["train"], splits["val"], out_dir, max_steps=STEPS, progress=False)
    assert calls == [1, 2, 3]
    monkeypatch.setattr(EditTrainer, "train_step", original)
    with open(os.path.join(out_dir, "run.json")) as f:
        assert json.load(f)["step"] == 2

    resumed = load_checkpoint(train_mend(tiny["llama"][1], splits["train"], splits["val"], out_dir,
                                         max_steps=STEPS, progress=False))
    straight = load_checkpoint(trained["llama"])
    tensors = [k for k, v in straight["model"].items() if torch.is_tensor(v)]
    assert tensors and set(resumed["model"]) == set(straight["model"])
    for key in tensors:
        assert torch.equal(resumed["model"][key], straight["model"][key]), key
    assert resumed["step"] == straight["step"] == STEPS


def test_a_finished_run_is_not_trained_again(trained, tiny, splits, monkeypatch):
    monkeypatch.setattr(mend_training, "build_trainer", lambda *a, **k: pytest.fail("trained again"))
    out_dir = os.path.dirname(trained["gpt2"])
    assert train_mend(tiny["gpt2"][1], splits["train"], splits["val"], out_dir, max_steps=STEPS,
                      progress=False) == trained["gpt2"]


def test_another_config_in_the_same_folder_is_refused(trained, tiny, splits, tmp_path):
    out_dir = os.path.dirname(trained["llama"])
    other = tiny_yaml("llama", tiny["llama"][0], tmp_path / "other.yaml", training=True, lr=0.5)
    with pytest.raises(UserError, match=r"another configuration \(differs in: lr\).*new --out folder"):
        train_mend(other, splits["train"], splits["val"], out_dir, max_steps=STEPS, progress=False)
    with pytest.raises(UserError, match="differs in: train data"):
        train_mend(tiny["llama"][1], splits["val"], splits["val"], out_dir, max_steps=STEPS, progress=False)


def test_user_errors_name_the_fix(tiny, splits, tmp_path):
    config = tiny["llama"][1]
    with pytest.raises(UserError, match="does not exist"):
        train_mend(str(tmp_path / "missing.yaml"), splits["train"], splits["val"], str(tmp_path / "a"))
    with pytest.raises(UserError, match="does not exist"):
        train_mend(config, str(tmp_path / "missing.json"), splits["val"], str(tmp_path / "b"))
    (tmp_path / "bad.yaml").write_text("alg: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        train_mend(str(tmp_path / "bad.yaml"), splits["train"], splits["val"], str(tmp_path / "c"))
    with pytest.raises(UserError, match="not a MEND training config"):
        train_mend(os.path.join(ROOT, "hparams", "DINM", "llama-7b.yaml"), splits["train"], splits["val"],
                   str(tmp_path / "d"))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "summary.json").write_text("{}")
    with pytest.raises(UserError, match="holds no MEND training run"):
        train_mend(config, splits["train"], splits["val"], str(busy))


def shipped(folder):
    """The shipped YAMLs of hparams/<folder>, for the installed easyeditor (FT and LoRA differ per flavour)."""
    import glob

    from easyedit_detox.easyedit.upstream import PYPI, flavour

    if folder in ("FT", "LoRA") and flavour() == PYPI:
        folder += "/pypi"
    # EasyEdit's published settings; SmolLM2's tuned files are tested with the real model (test_real_model.py).
    return sorted(p for p in glob.glob(os.path.join(ROOT, "hparams", folder, "*.yaml")) if "smollm2" not in p)


@pytest.mark.parametrize("folder", ["MEND", "TRAINING/MEND", "FT", "LoRA"])
def test_shipped_yamls_load_with_easyeditors_classes(folder):
    from easyedit_detox.methods.hparams import load_hparams

    paths = shipped(folder)
    assert [os.path.basename(p) for p in paths] == ["gpt2-xl.yaml", "llama-7b.yaml", "mistral-7b.yaml"]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            assert f.readline().startswith("# Source: zjunlp/EasyEdit hparams/")
        if folder == "TRAINING/MEND":
            assert mend_training.load_training_hparams(path).alg == "MEND"
            continue
        hparams = load_hparams(path)
        assert hparams.alg_name == folder and hparams.max_length in (1024, 2048)
        if folder == "MEND":  # the archive is where train-mend writes for the matching training YAML
            name = os.path.basename(path)[: -len(".yaml")]
            assert hparams.archive == f"./results/mend/{name}/mend.pt"


def test_mistral_training_is_refused_where_easyeditors_mend_cannot_run_it(splits, tmp_path):
    from easyedit_detox.easyedit.upstream import PYPI, flavour

    if flavour() != PYPI:
        pytest.skip("EasyEdit-git's MEND runs Mistral")
    path = os.path.join(ROOT, "hparams", "TRAINING", "MEND", "mistral-7b.yaml")
    with pytest.raises(UserError, match="knows none in 'mistralai/Mistral-7B-v0.1'.*EasyEdit from git"):
        train_mend(path, splits["train"], splits["val"], str(tmp_path / "m"))


def _evaluated(hparams_path, out, cache, limit=3):
    """`easyedit-detox evaluate` of an hparams file on the bundled records; returns the summary."""
    from easyedit_detox.cli import main

    args = ["evaluate", "--hparams", hparams_path, "--data", toy.sample_path(), "--out", str(out), "--limit",
            str(limit), "--no-progress", "--cache", str(cache), "--general-cases", "0", "--max-length", "256",
            "--max-output-length", "8"]
    assert main(args) == 0
    with open(os.path.join(out, "summary.json"), encoding="utf-8") as f:
        return json.load(f)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_mend_is_evaluated_like_any_method_and_undone(trained, tiny, kind, tmp_path):
    from easyedit_detox.methods.hparams import load_hparams
    from easyedit_detox.easyedit.loading import load_model_and_tokenizer
    from easyedit_detox.evaluation.generation import GenerationSettings
    from easyedit_detox.evaluation.runner import EvaluationSettings, evaluate

    folder = tiny[kind][0]
    hparams = load_hparams(tiny_yaml(kind, folder, tmp_path / "mend.yaml", training=False, archive=trained[kind]))
    model, tok = load_model_and_tokenizer(hparams)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    summary = evaluate(model, tok, hparams, toy.sample_path(), str(tmp_path / "out"), limit=2,
                       settings=EvaluationSettings(cache_dir=str(tmp_path / "c"), progress=False, general_cases=0),
                       generation=GenerationSettings(256, 8))
    assert summary["method"] == "MEND" and summary["n_cases"] == 2
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())
    assert not any(k.startswith("__") for p in model.parameters() for k in vars(p))  # MEND's stashed activations
    with open(tmp_path / "out" / "cases.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    assert all(r["post"]["DS"]["input"] == r["pre"]["DS"]["input"] for r in rows)


def test_dinm_ft_lora_and_mend_compare_on_one_table(trained, tiny, tmp_path, capsys):
    """The comparison the project exists for: four EasyEdit methods, one model, the same 3 records, one table."""
    from test_cli import write_hparams
    from test_methods import method_yaml

    from easyedit_detox.cli import main

    folder = tiny["llama"][0]
    paths = {
        "DINM": write_hparams(tmp_path, folder, num_steps=3),
        "FT": method_yaml(tmp_path, "FT", "llama", folder),
        "LoRA": method_yaml(tmp_path, "LoRA", "llama", folder),
        "MEND": tiny_yaml("llama", folder, tmp_path / "mend.yaml", training=False, archive=trained["llama"]),
    }
    runs = {m: tmp_path / m.lower() for m in paths}
    for method, path in paths.items():
        assert _evaluated(path, runs[method], tmp_path / "cache")["method"] == method
    capsys.readouterr()
    table = tmp_path / "table.tex"
    plot = tmp_path / "table.png"
    assert main(["compare", *map(str, runs.values()), "--latex", str(table), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.split("Paired differences")[0].splitlines() if line.startswith(f"| {tmp_path}")]
    assert [r.split("|")[2].strip() for r in rows] == list(paths)
    tex = table.read_text(encoding="utf-8")
    assert "\\begin{tabular}" in tex and all(m in tex for m in paths)
    with open(plot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
