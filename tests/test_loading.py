"""Loading by the hparams' classes, on the CPU, with and without a device_map."""


import pytest
import torch

from easyedit_detox import apply_dinm_to_model
from easyedit_detox.easyedit.loading import load_model_and_tokenizer
from easyedit_detox.core.errors import UserError
from dinm_reference import make_request
from test_dinm import hparams


def test_loads_by_class_and_gives_gpt2_a_pad_token(tiny_gpt2_dir):
    h = hparams("gpt2", model_name=tiny_gpt2_dir, model_class="GPT2LMHeadModel", tokenizer_class="GPT2TokenizerFast")
    model, tok = load_model_and_tokenizer(h)
    assert type(model).__name__ == "GPT2LMHeadModel" and not model.training
    assert tok.pad_token_id == tok.eos_token_id
    assert next(model.parameters()).dtype == torch.float32


def test_dtype_and_bad_names_are_refused(tiny_llama_dir, tmp_path):
    h = hparams("llama", model_name=tiny_llama_dir, model_class="LlamaForCausalLM", tokenizer_class="AutoTokenizer")
    model, _ = load_model_and_tokenizer(h, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    with pytest.raises(UserError, match="does not exist"):
        load_model_and_tokenizer(hparams("llama", model_name=str(tmp_path / "missing"), model_class="LlamaForCausalLM",
                                         tokenizer_class="AutoTokenizer"))
    with pytest.raises(UserError, match="transformers does not have"):
        load_model_and_tokenizer(hparams("llama", model_name=tiny_llama_dir, model_class="LlamaForCausualLM",
                                         tokenizer_class="AutoTokenizer"))


def test_model_parallel_loads_with_a_device_map_and_edits(tiny_llama_dir, safeedit_records):
    h = hparams("llama", model_name=tiny_llama_dir, model_class="LlamaForCausalLM", tokenizer_class="AutoTokenizer",
                model_parallel=True, layers=[2], num_steps=2)
    model, tok = load_model_and_tokenizer(h)
    # accelerate placed it (all on the CPU here); transformers 5 records hf_device_map only for maps that
    # span several devices (it dispatches only those), 4.x always.
    import transformers
    if int(transformers.__version__.split(".")[0]) < 5:
        assert getattr(model, "hf_device_map", None)
    before = model.model.layers[2].mlp.down_proj.weight.detach().clone()
    apply_dinm_to_model(model, tok, [make_request(safeedit_records[0])], h)
    assert not torch.equal(model.model.layers[2].mlp.down_proj.weight, before)
