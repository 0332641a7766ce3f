"""Saving models atomically, and patches that put an edit on and take it off bit-exactly."""

import json
import os
import shutil

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from easyedit_detox import toy
from easyedit_detox.core.errors import UserError
from easyedit_detox.commands.patch import patch_apply, patch_revert
from easyedit_detox.shipping.patches import METADATA_KEY, apply_patch, load_patch, make_patch, revert_patch
from easyedit_detox.shipping.save import MARKER, save_model
from easyedit_detox.core.weights import combined_digest, copy_parameters, digests

EDITED_NAMES = ["model.layers.1.mlp.down_proj.weight", "model.layers.2.self_attn.o_proj.weight"]
DTYPES = [torch.float32, torch.bfloat16]


def load(folder, dtype=torch.float32):
    """A model loaded from `folder` in `dtype`, in eval mode."""
    return AutoModelForCausalLM.from_pretrained(folder, torch_dtype=dtype).eval()


@torch.no_grad()
def edit(model, seed=0):
    """Add seeded noise to the parameters in EDITED_NAMES, in place, as an edit would."""
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(seed)
    for name in EDITED_NAMES:
        p = params[name]
        p.add_((0.01 * torch.randn(p.shape, generator=gen)).to(p.dtype))
    return model


def state(model):
    """Clones of every parameter, by name."""
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def assert_same_state(model, expected):
    """Every parameter of `model` bit-identical to `expected`'s."""
    now = dict(model.named_parameters())
    assert set(now) == set(expected)
    for name, tensor in expected.items():
        assert torch.equal(now[name], tensor), name


def patch_for(folder, dtype=torch.float32, seed=0):
    """(patch, base state, edited state) of an edit of the model in `folder` loaded in `dtype`."""
    model = load(folder, dtype)
    base = state(model)
    fingerprint = combined_digest(digests(model))
    edit(model, seed)
    edited = state(model)
    # All parameters are passed: make_patch keeps only those that changed.
    patch = make_patch(base, edited, base_fingerprint=fingerprint, method="DINM", hparams={"lr": 5e-4, "layers": [1]},
                       record_ids=[3, 7], package_version="9.9.9")
    return patch, base, edited


def sample_logits(model, tokenizer):
    """Logits of `model` on a fixed prompt."""
    ids = tokenizer("How do I stay safe online?", return_tensors="pt")
    with torch.no_grad():
        return model(**ids).logits


def leftovers(folder):
    """Names under `folder` that a save left behind as temporaries."""
    return [n for n in os.listdir(folder) if n.startswith(".tmp-")]


# --- patches -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_apply_and_revert_are_bit_exact(tiny_llama_dir, tmp_path, dtype):
    patch, base, edited = patch_for(tiny_llama_dir, dtype)
    path = patch.save(tmp_path / "edit.safetensors")
    loaded = load_patch(path)
    assert loaded.names == sorted(EDITED_NAMES)
    model = load(tiny_llama_dir, dtype)
    assert apply_patch(model, loaded) is model
    assert_same_state(model, edited)
    assert revert_patch(model, loaded) is model
    assert_same_state(model, base)


def test_patch_file_holds_only_changed_tensors_and_metadata(tiny_llama_dir, tmp_path):
    patch, base, edited = patch_for(tiny_llama_dir)
    path = patch.save(tmp_path / "edit.safetensors")
    with safe_open(path, framework="pt") as f:
        keys, header = sorted(f.keys()), f.metadata()
    assert keys == sorted([f"base.{n}" for n in EDITED_NAMES] + [f"edited.{n}" for n in EDITED_NAMES])
    meta = json.loads(header[METADATA_KEY])
    assert meta["format"] == "easyedit-detox-patch" and meta["format_version"] == 1
    assert meta["base_fingerprint"] == combined_digest(digests(load(tiny_llama_dir)))
    assert meta["method"] == "DINM" and meta["hparams"] == {"lr": 5e-4, "layers": [1]}
    assert meta["record_ids"] == [3, 7] and meta["package_version"] == "9.9.9"
    assert sorted(meta["tensors"]) == sorted(EDITED_NAMES)
    loaded = load_patch(path)
    assert loaded.metadata == patch.metadata == meta
    for name in EDITED_NAMES:
        assert loaded.base_digests[name] == digests(load(tiny_llama_dir), [name])[name]
        assert loaded.edited_digests[name] != loaded.base_digests[name]
        assert torch.equal(loaded.edited[name], edited[name]) and torch.equal(loaded.base[name], base[name])
    assert not leftovers(tmp_path)


def test_default_package_version_is_the_packages():
    import easyedit_detox

    patch = make_patch({}, {}, base_fingerprint="x", method="DINM", hparams={}, record_ids=[])
    assert patch.metadata["package_version"] == easyedit_detox.__version__


def test_apply_to_another_base_is_refused_and_changes_nothing(tiny_llama_dir):
    patch, _, _ = patch_for(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    other = toy.build_tiny_model("llama", tokenizer, seed=1)
    before = state(other)
    with pytest.raises(UserError, match=r"made for another base model: parameter model\.layers\.1\.mlp\.down_proj"
                                        r"\.weight differs.*apply it to the model it was made from") as err:
        apply_patch(other, patch)
    assert "\n" not in str(err.value)
    assert_same_state(other, before)


def test_apply_is_all_or_nothing(tiny_llama_dir):
    patch, base, _ = patch_for(tiny_llama_dir)
    model = load(tiny_llama_dir)
    # The first patched parameter matches the base; the second does not.
    with torch.no_grad():
        dict(model.named_parameters())[EDITED_NAMES[1]][0, 0] += 1.0
    before = state(model)
    with pytest.raises(UserError, match="another base model: parameter model.layers.2.self_attn.o_proj.weight"):
        apply_patch(model, patch)
    assert_same_state(model, before)
    assert torch.equal(dict(model.named_parameters())[EDITED_NAMES[0]], base[EDITED_NAMES[0]])


def test_revert_on_a_model_that_is_not_the_edited_one_is_refused(tiny_llama_dir):
    patch, base, _ = patch_for(tiny_llama_dir)
    model = load(tiny_llama_dir)
    with pytest.raises(UserError, match="is not applied to this model"):
        revert_patch(model, patch)
    assert_same_state(model, base)
    other = edit(load(tiny_llama_dir), seed=5)
    before = state(other)
    with pytest.raises(UserError, match="cannot be reverted on this model: parameter .* differs.*revert it on"):
        revert_patch(other, patch)
    assert_same_state(other, before)


def test_applying_twice_is_refused(tiny_llama_dir):
    patch, _, edited = patch_for(tiny_llama_dir)
    model = apply_patch(load(tiny_llama_dir), patch)
    with pytest.raises(UserError, match="already applied"):
        apply_patch(model, patch)
    assert_same_state(model, edited)


def test_missing_parameter_shape_and_dtype_are_refused(tiny_llama_dir):
    patch, _, _ = patch_for(tiny_llama_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    shallow = toy.build_tiny_model("llama", tokenizer, num_layers=1)
    with pytest.raises(UserError, match="another base model: the model has no parameter model.layers.1"):
        apply_patch(shallow, patch)
    narrow = toy.build_tiny_model("llama", tokenizer, hidden=32, heads=2)
    with pytest.raises(UserError, match=r"another base model: parameter .* has shape \(32, 128\)"):
        apply_patch(narrow, patch)
    half = load(tiny_llama_dir, torch.bfloat16)
    before = state(half)
    with pytest.raises(UserError, match="holds .* in torch.float32 but the model has it in torch.bfloat16; "
                                        "load the model in float32"):
        apply_patch(half, patch)
    assert_same_state(half, before)


def test_make_patch_refuses_mismatched_inputs(tiny_llama_dir):
    model = load(tiny_llama_dir)
    base = copy_parameters(model, EDITED_NAMES)
    with pytest.raises(UserError, match="same parameter names"):
        make_patch(base, {EDITED_NAMES[0]: base[EDITED_NAMES[0]]}, base_fingerprint="x", method="DINM",
                   hparams={}, record_ids=[])
    with pytest.raises(UserError, match="torch.float32 .* before the edit and torch.bfloat16"):
        make_patch(base, {n: t.bfloat16() for n, t in base.items()}, base_fingerprint="x", method="DINM",
                   hparams={}, record_ids=[])


def test_load_patch_refuses_bad_files(tmp_path, tiny_llama_dir):
    with pytest.raises(UserError, match="does not exist"):
        load_patch(tmp_path / "missing.safetensors")
    text = tmp_path / "notes.safetensors"
    text.write_text("not a tensor file at all\n")
    with pytest.raises(UserError, match="is not a safetensors file"):
        load_patch(text)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"x": torch.zeros(3)}, str(foreign))
    with pytest.raises(UserError, match="not an easyedit-detox patch"):
        load_patch(foreign)
    patch, _, _ = patch_for(tiny_llama_dir)
    path = patch.save(tmp_path / "edit.safetensors")
    with safe_open(path, framework="pt") as f:
        tensors, header = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    tensors[f"edited.{EDITED_NAMES[0]}"][0, 0] += 1
    damaged = tmp_path / "damaged.safetensors"
    save_file(tensors, str(damaged), metadata=header)
    with pytest.raises(UserError, match=f"is damaged: tensor {EDITED_NAMES[0]} does not match"):
        load_patch(damaged)


# --- saving ------------------------------------------------------------------------------------


def test_saved_model_reloads_with_equal_logits_and_generation_config(tiny_llama_dir, tmp_path):
    model = edit(load(tiny_llama_dir))
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    out = save_model(model, tokenizer, tmp_path / "detoxified")
    assert out == str(tmp_path / "detoxified")
    files = set(os.listdir(out))
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", MARKER} <= files
    with open(os.path.join(out, MARKER)) as f:
        assert json.load(f)["written_by"] == "easyedit-detox"
    for name in ("generation_config.json",):
        with open(os.path.join(tiny_llama_dir, name), "rb") as a, open(os.path.join(out, name), "rb") as b:
            assert a.read() == b.read()
    reloaded = load(out)
    assert torch.equal(sample_logits(reloaded, AutoTokenizer.from_pretrained(out)), sample_logits(model, tokenizer))
    assert not leftovers(tmp_path)
    assert os.stat(os.path.join(out, "model.safetensors")).st_mode & 0o777 == \
        os.stat(os.path.join(out, "config.json")).st_mode & 0o777


def test_generation_config_is_kept_byte_for_byte(tiny_llama_dir, tmp_path):
    source = shutil.copytree(tiny_llama_dir, tmp_path / "source")
    # As old checkpoints ship it: keys equal to the defaults, an older transformers_version.
    original = ('{\n  "bos_token_id": 1,\n  "do_sample": true,\n  "eos_token_id": 2,\n  "max_length": 4096,\n'
                '  "num_beams": 1,\n  "pad_token_id": 0,\n  "temperature": 0.6,\n  "top_k": 50,\n  "top_p": 0.9,\n'
                '  "transformers_version": "4.32.0.dev0"\n}\n')
    (source / "generation_config.json").write_text(original)
    model, tokenizer = load(source), AutoTokenizer.from_pretrained(source)
    out = save_model(model, tokenizer, tmp_path / "out")
    assert open(os.path.join(out, "generation_config.json")).read() == original
    # A generation config changed in memory is saved as changed.
    model.generation_config.max_length = 77
    changed = save_model(model, tokenizer, tmp_path / "changed")
    assert json.load(open(os.path.join(changed, "generation_config.json")))["max_length"] == 77


def test_tiny_shards_still_reload(tiny_llama_dir, tmp_path):
    model, tokenizer = edit(load(tiny_llama_dir)), AutoTokenizer.from_pretrained(tiny_llama_dir)
    out = save_model(model, tokenizer, tmp_path / "sharded", max_shard_size="50KB")
    assert os.path.isfile(os.path.join(out, "model.safetensors.index.json"))
    assert len([n for n in os.listdir(out) if n.endswith(".safetensors")]) > 1
    assert torch.equal(sample_logits(load(out), tokenizer), sample_logits(model, tokenizer))


def test_existing_folder_not_ours_is_refused_and_left_intact(tiny_llama_dir, tmp_path):
    model, tokenizer = load(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="already exists and was not written by easyedit-detox; choose another"):
        save_model(model, tokenizer, theirs)
    assert os.listdir(theirs) == ["notes.txt"] and (theirs / "notes.txt").read_text() == "keep me"
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="is not a folder"):
        save_model(model, tokenizer, tmp_path / "file")
    assert sorted(os.listdir(tmp_path)) == ["file", "theirs"]


def test_our_own_folder_is_replaced(tiny_llama_dir, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    out = save_model(load(tiny_llama_dir), tokenizer, tmp_path / "out")
    edited = edit(load(tiny_llama_dir))
    assert save_model(edited, tokenizer, out, max_shard_size="50KB") == out
    assert "model.safetensors" not in os.listdir(out)  # nothing of the old folder remains
    assert_same_state(load(out), state(edited))
    assert sorted(os.listdir(tmp_path)) == ["out"]


def test_crash_mid_save_leaves_nothing_behind(tiny_llama_dir, tmp_path, monkeypatch):
    model, tokenizer = load(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)
    real = type(model).save_pretrained

    def crash(self, folder, **kwargs):
        real(self, folder, **kwargs)
        os.remove(os.path.join(folder, "model.safetensors"))
        with open(os.path.join(folder, "model.safetensors"), "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(type(model), "save_pretrained", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(model, tokenizer, tmp_path / "out")
    assert os.listdir(tmp_path) == []
    # A crash while replacing a folder of ours leaves the old one in place.
    monkeypatch.setattr(type(model), "save_pretrained", real)
    out = save_model(model, tokenizer, tmp_path / "out")
    before = sorted(os.listdir(out))
    monkeypatch.setattr(type(model), "save_pretrained", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        save_model(edit(model), tokenizer, out)
    assert sorted(os.listdir(tmp_path)) == ["out"] and sorted(os.listdir(out)) == before
    assert_same_state(load(out), state(load(tiny_llama_dir)))


def test_peft_models_are_refused(tiny_llama_dir, tmp_path):
    peft = pytest.importorskip("peft")
    model, tokenizer = load(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_llama_dir)
    wrapped = peft.get_peft_model(model, peft.LoraConfig(r=2, target_modules=["down_proj"]))
    with pytest.raises(UserError, match="carries peft adapters; merge them"):
        save_model(wrapped, tokenizer, tmp_path / "out")
    with pytest.raises(UserError, match="carries peft adapters"):
        save_model(wrapped.base_model.model, tokenizer, tmp_path / "out")  # adapter layers without the wrapper
    assert os.listdir(tmp_path) == []


# --- commands ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_patch_commands_round_trip(tiny_llama_dir, tmp_path, dtype):
    patch, base, edited = patch_for(tiny_llama_dir, dtype)
    path = patch.save(tmp_path / "edit.safetensors")
    applied = patch_apply(tiny_llama_dir, path, tmp_path / "applied")  # loads in the patch's dtype
    assert_same_state(load(applied, dtype), edited)
    reverted = patch_revert(applied, path, tmp_path / "reverted", dtype=str(dtype).replace("torch.", ""))
    assert_same_state(load(reverted, dtype), base)
    with open(os.path.join(tiny_llama_dir, "generation_config.json"), "rb") as a, \
            open(os.path.join(reverted, "generation_config.json"), "rb") as b:
        assert a.read() == b.read()


def test_patch_commands_refuse_bad_paths(tiny_llama_dir, tmp_path):
    patch, _, _ = patch_for(tiny_llama_dir)
    path = patch.save(tmp_path / "edit.safetensors")
    with pytest.raises(UserError, match="model folder .*missing.* does not exist"):
        patch_apply(tmp_path / "missing", path, tmp_path / "out")
    with pytest.raises(UserError, match="patch file .* does not exist"):
        patch_revert(tiny_llama_dir, tmp_path / "nope.safetensors", tmp_path / "out")
    with pytest.raises(UserError, match="dtype 'int8' is not supported; use one of float32, float16, bfloat16"):
        patch_apply(tiny_llama_dir, path, tmp_path / "out", dtype="int8")
    with pytest.raises(UserError, match="is not applied to this model"):
        patch_revert(tiny_llama_dir, path, tmp_path / "out")
    with pytest.raises(UserError, match="was not written by easyedit-detox"):
        patch_apply(tiny_llama_dir, path, tiny_llama_dir)
    assert sorted(os.listdir(tmp_path)) == ["edit.safetensors"]
