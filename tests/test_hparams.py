"""The shipped YAMLs, hyperparameter validation, and every bad input DINM must refuse."""

import glob
import os

import pytest
import torch
import transformers
import yaml

from dinm_reference import make_request
from easyedit_detox import DINMHyperParams, apply_dinm_to_model
from easyedit_detox.core.devices import parse_device, resolve_device
from easyedit_detox.core.errors import HyperParamsError, RequestError, UserError
from test_dinm import hparams, snapshot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The paper's models (EasyEdit's published settings and their untuned siblings); SmolLM2's tuned file is
# tested with the real model (test_real_model.py).
YAMLS = sorted(p for p in glob.glob(os.path.join(ROOT, "hparams", "DINM", "*.yaml")) if "smollm2" not in p)
PUBLISHED_KEYS = {"alg_name", "model_name", "model_class", "tokenizer_class", "device", "suffix_system_prompt",
                  "layers", "num_steps", "batch_size", "max_length", "max_output_length", "lr", "weight_decay",
                  "kl_factor", "norm_constraint", "rewrite_module_tmp", "layer_module_tmp", "mlp_module_tmp",
                  "attn_module_tmp", "ln_f_module", "lm_head_module", "model_parallel"}


def test_the_five_model_yamls_ship():
    names = {os.path.basename(p) for p in YAMLS}
    assert names == {"llama-7b.yaml", "mistral-7b.yaml", "gpt2-xl.yaml", "llama3.1-8b-instruct.yaml",
                     "qwen2.5-7b-instruct.yaml"}


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_yaml_loads_with_every_published_key(path):
    with open(path) as f:
        raw = yaml.safe_load(f)
    assert set(raw) == PUBLISHED_KEYS
    h = DINMHyperParams.from_hparams(path)
    assert h.alg_name == "DINM" and isinstance(h.lr, float) and h.norm_constraint is False
    assert h.constraint_grad is True and h.layers == [] and h.num_steps == 10 and h.kl_factor == 0.1
    assert DINMHyperParams.from_hparams(path[: -len(".yaml")]).lr == h.lr  # .yaml added when missing


def test_published_values():
    load = lambda name: DINMHyperParams.from_hparams(os.path.join(ROOT, "hparams", "DINM", name))
    llama, mistral, gpt2 = load("llama-7b"), load("mistral-7b"), load("gpt2-xl")
    assert (llama.lr, mistral.lr, gpt2.lr) == (5e-4, 1e-5, 5e-4)
    assert (llama.max_output_length, gpt2.max_output_length) == (600, 300)
    assert (llama.max_length, gpt2.max_length) == (2048, 1024)
    assert gpt2.rewrite_module_tmp == "transformer.h.{}.mlp.c_proj"
    assert llama.rewrite_module_tmp == mistral.rewrite_module_tmp == "model.layers.{}.mlp.down_proj.weight"


def tiny_from_class(model_class):
    cls = getattr(transformers, model_class)
    config = cls.config_class(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, n_embd=32, n_layer=2, n_head=4)
    return cls(config)


@pytest.mark.parametrize("path", YAMLS, ids=os.path.basename)
def test_yaml_templates_name_real_parameters(path):
    h = DINMHyperParams.from_hparams(path)
    assert hasattr(transformers, h.tokenizer_class)
    model = tiny_from_class(h.model_class)
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    for layer in (0, 1):
        target = h.rewrite_module_tmp.format(layer)
        assert target in params or any(n.startswith(target + ".") for n in params), target
        for tmp in (h.layer_module_tmp, h.mlp_module_tmp, h.attn_module_tmp):
            assert tmp.format(layer) in modules, tmp
    assert h.ln_f_module in modules and h.lm_head_module in modules


# -- hyperparameter files that must not load ----------------------------------------------------

def write_yaml(tmp_path, **changes):
    with open(YAMLS[0]) as f:
        raw = yaml.safe_load(f)
    for key, value in changes.items():
        if value is KeyError:
            raw.pop(key)
        else:
            raw[key] = value
    path = tmp_path / "h.yaml"
    path.write_text(yaml.safe_dump(raw))
    return str(path)


@pytest.mark.parametrize("changes,needle", [
    (dict(lr=KeyError), "missing key(s) ['lr']"),
    (dict(learning_rate=1e-4), "unknown key(s) ['learning_rate']"),
    (dict(alg_name="ROME"), "alg_name is 'ROME'"),
    (dict(num_steps=0), "'num_steps' is 0"),
    (dict(lr=0), "'lr' is 0"),
    (dict(lr=-1e-4), "'lr' is -0.0001"),
    (dict(norm_constraint=True), "'norm_constraint' is True"),
    (dict(device="gpu"), "'device' is 'gpu'"),
    (dict(layers="3"), "'layers' is '3'"),
])
def test_bad_yaml_is_refused_with_its_key(tmp_path, changes, needle):
    with pytest.raises(HyperParamsError) as info:
        DINMHyperParams.from_hparams(write_yaml(tmp_path, **changes))
    assert needle in str(info.value)


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(HyperParamsError, match="does not exist"):
        DINMHyperParams.from_hparams(str(tmp_path / "nope.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("alg_name: [DINM\n")
    with pytest.raises(HyperParamsError, match="not valid YAML"):
        DINMHyperParams.from_hparams(str(bad))


def test_optional_keys_and_scientific_notation(tmp_path):
    h = DINMHyperParams.from_hparams(write_yaml(tmp_path, model_parallel=KeyError, lr="5e-4", norm_constraint="1e-3",
                                                constraint_grad=False))
    assert h.lr == 5e-4 and h.norm_constraint == 1e-3 and h.model_parallel is False and h.constraint_grad is False


@pytest.mark.parametrize("value,expected", [(0, "cuda:0"), (3, "cuda:3"), ("cpu", "cpu"), ("cuda", "cuda"),
                                            ("cuda:1", "cuda:1"), ("auto", "auto"), ("2", "cuda:2")])
def test_device_forms(value, expected):
    assert parse_device(value) == expected


def test_auto_device_falls_back_to_cpu_without_gpu():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert resolve_device("auto") == torch.device("cpu")
    with pytest.raises(HyperParamsError, match="no CUDA GPU"):
        resolve_device(0)


# -- requests and settings that must stop DINM before it touches the model ----------------------

def bad_cases(records):
    good = make_request(records[0])
    no_loc = dict(good, locality={})
    empty_target = dict(good, target_new="")
    no_truth = {k: v for k, v in good.items() if k != "ground_truth"}
    return [
        ("no locality", [no_loc], {}, RequestError, "general knowledge constraint"),
        ("empty target_new", [empty_target], {}, RequestError, "empty 'target_new'"),
        ("no ground_truth", [no_truth], {}, RequestError, "no 'ground_truth'"),
        ("template matches nothing", [good], dict(rewrite_module_tmp="model.layers.{}.mlp.out_proj.weight"),
         HyperParamsError, "real names look like ['model.layers.0.mlp.gate_proj.weight'"),
        ("layer out of range", [good], dict(layers=[7]), HyperParamsError, "valid indices 0..3"),
        ("negative layer", [good], dict(layers=[-1]), HyperParamsError, "valid indices 0..3"),
    ]


@pytest.mark.parametrize("case", range(6))
def test_bad_input_names_the_problem_and_leaves_the_model_untouched(tiny_llama, safeedit_records, case):
    model, tok = tiny_llama
    _, requests, overrides, error, needle = bad_cases(safeedit_records)[case]
    before = snapshot(model)
    with pytest.raises(error) as info:
        apply_dinm_to_model(model, tok, requests, hparams("llama", **overrides))
    assert needle in str(info.value)
    assert isinstance(info.value, UserError)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("overrides,needle", [(dict(num_steps=0), "'num_steps' is 0"), (dict(lr=0.0), "'lr' is 0.0")])
def test_bad_settings_refused_at_construction(overrides, needle):
    with pytest.raises(HyperParamsError) as info:
        hparams("llama", **overrides)
    assert needle in str(info.value)


def test_ground_truth_not_needed_with_fixed_layers(tiny_llama, safeedit_records):
    model, tok = tiny_llama
    req = {k: v for k, v in make_request(safeedit_records[0]).items() if k != "ground_truth"}
    report = {}
    apply_dinm_to_model(model, tok, [req], hparams("llama", layers=[1], num_steps=1), report=report)
    assert report["layers"] == [1]
