"""`easyedit-detox apply`: edit a model with SafeEdit records one after another and keep the result.

Each edit starts from the model the previous ones left (EasyEdit's `sequential_edit`). The result
is saved as a Hugging Face folder (`--save`) and/or as an edit patch holding only the changed
tensors (`--patch`). After every edit the changed tensors' current values and the progress go to
a state file next to the output (`<output>.apply-state.json` and `.safetensors`), so an interrupted
run resumes after its last finished edit; the state files are removed once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Dict, List, Optional, Sequence

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.progress import progress_bar
from easyedit_detox.core.files import file_digest, replaced_atomically, write_atomically
from easyedit_detox.core.weights import combined_digest, digests, tensor_digest, write_back

LOG = logging.getLogger(__name__)
STATE_SUFFIX = ".apply-state"


def apply_edits(model, tok, hparams, requests: Sequence[Dict[str, Any]], progress: bool = True,
                start: int = 0, after_edit=None, editor=None):
    """Apply `requests[start:]` to `model` in order, keeping each edit; returns the method runner (its originals)."""
    from easyedit_detox.methods.session import UndoSession

    editor = editor or UndoSession(model, tok, hparams)
    bar = progress_bar(len(requests), f"{editor.method.name} edits", "edit", enabled=progress, initial=start)
    try:
        for k in range(start, len(requests)):
            edit = editor.keep(requests[k])
            if after_edit is not None:
                after_edit(k, edit)
            bar.update(1)
    finally:
        bar.close()
    return editor


def _state_paths(output: str):
    return output + STATE_SUFFIX + ".json", output + STATE_SUFFIX + ".safetensors"


def _identity(hparams_path: str, data_path: str, case_ids: List[int], dtype: str, base: str,
              prompt_format: str) -> Dict[str, Any]:
    return {"hparams_sha256": file_digest(hparams_path), "data_sha256": file_digest(data_path), "case_ids": case_ids,
            "dtype": dtype, "base_fingerprint": base, "prompt_format": prompt_format}


def _save_state(json_path: str, tensors_path: str, identity, done: int, edits, model, names) -> None:
    from safetensors.torch import save_file

    params = dict(model.named_parameters())
    tensors = {n: params[n].detach().to("cpu").contiguous() for n in names}
    with replaced_atomically(tensors_path) as tmp:
        save_file(tensors, tmp)
    state = {"identity": identity, "done": done, "edits": edits,
             "tensors": {n: tensor_digest(t) for n, t in tensors.items()}}
    write_atomically(json_path, json.dumps(state, indent=1) + "\n")


def _load_state(json_path: str, tensors_path: str, identity) -> Optional[Dict[str, Any]]:
    if not os.path.exists(json_path):
        return None
    with open(json_path, encoding="utf-8") as f:
        state = json.load(f)
    if state.get("identity") != identity:
        raise UserError(f"{json_path} belongs to an interrupted `apply` with other hparams, data, cases, dtype or "
                        "base model; rerun that command to finish it, or delete the state file to start over")
    from safetensors.torch import load_file

    tensors = load_file(tensors_path) if os.path.exists(tensors_path) else {}
    if {n: tensor_digest(t) for n, t in tensors.items()} != state["tensors"]:
        raise UserError(f"{tensors_path} does not match {json_path} (an interrupted write?); delete both state files "
                        "to start over")
    state["values"] = tensors
    return state


def apply_from_files(hparams_path: str, data_path: str, case_ids: Optional[Sequence[int]] = None,
                     limit: Optional[int] = None, save: Optional[str] = None, patch: Optional[str] = None,
                     dtype: str = "float32", progress: bool = True, prompt_format: str = "raw",
                     model_dir: Optional[str] = None, device: Optional[str] = None, detoxify: bool = False) -> str:
    """The `apply` command; returns what it wrote, in one paragraph.

    `detoxify`: the global protocol, one edit made from all the records at once (in one call where the
    method takes them together), instead of one kept edit per record.
    """
    from easyedit_detox.methods.hparams import apply_overrides, hparams_dict, load_hparams
    from easyedit_detox.core.files import read_yaml
    from easyedit_detox.easyedit.loading import load_model_and_tokenizer
    from easyedit_detox.data.safeedit import SafeEditDataset
    from easyedit_detox.evaluation.formats import PromptFormat
    from easyedit_detox.evaluation.runner import select_cases
    from easyedit_detox.methods.registry import adapter_for, refuse_unsupported, resolve_method
    from .patches import make_patch
    from .save import check_out_dir, package_version, save_model

    if not save and not patch:
        raise UserError("apply needs --save DIR (a Hugging Face model folder) and/or --patch FILE (the changed tensors)")
    alg_name = str(read_yaml(hparams_path).get("alg_name"))
    refuse_unsupported(alg_name)  # before anything is loaded
    if detoxify:
        adapter_for(alg_name).refuse_global()
    hparams = load_hparams(hparams_path)
    apply_overrides(hparams, model=model_dir, device=device)  # the patch's metadata then names the checkpoint used
    if save:
        check_out_dir(save)
    if patch and os.path.isdir(patch):
        raise UserError(f"--patch {patch!r} is a folder; give a file name such as detox.safetensors")
    cases = select_cases(SafeEditDataset(data_path, limit=limit), case_ids)
    method = resolve_method(str(hparams.alg_name))
    suffix = getattr(hparams, "suffix_system_prompt", None) if method.uses_suffix else None
    model, tok = load_model_and_tokenizer(hparams, dtype=dtype)
    fmt = PromptFormat(prompt_format, tok)
    requests = [fmt.request(case.edit_request(suffix)) for case in cases]
    base_digests = digests(model)
    base = combined_digest(base_digests)
    identity = _identity(hparams_path, data_path, [c.case_id for c in cases], dtype, base, fmt.name)
    if detoxify:
        identity["protocol"] = "global"
    json_path, tensors_path = _state_paths(os.path.abspath(save or patch))

    from easyedit_detox.methods.session import UndoSession

    editor = UndoSession(model, tok, hparams, method=method, vanilla_digests=base_digests)
    state = _load_state(json_path, tensors_path, identity)
    start, edits = 0, []
    if state is not None:
        start, edits = state["done"], state["edits"]
        values = state["values"]
        editor.adopt({n: p.detach().clone() for n, p in model.named_parameters() if n in values})
        write_back(model, values)
        LOG.info("resuming after %d of %d edits from %s", start, len(requests), json_path)

    def after_edit(k, edit):
        edits.append({"case_id": cases[k].case_id, **edit.info})
        _save_state(json_path, tensors_path, identity, k + 1, edits, model, list(editor.kept_originals))

    if detoxify:
        if state is None:  # a finished detoxification left its state: nothing to redo
            bar = progress_bar(len(requests), f"{method.name} detoxifying", "record", enabled=progress)
            try:
                edit = editor.detoxify(requests, on_request=lambda done: bar.update(done - bar.n))
            finally:
                bar.close()
            edits = [{"case_ids": [c.case_id for c in cases], **edit.info}]
            _save_state(json_path, tensors_path, identity, len(requests), edits, model, list(editor.kept_originals))
    else:
        apply_edits(model, tok, hparams, requests, progress=progress, start=start, after_edit=after_edit,
                    editor=editor)
    changed = editor.kept_originals
    params = dict(model.named_parameters())
    written = []
    if patch:
        made = make_patch(changed, {n: params[n] for n in changed}, base_fingerprint=base, method=method.name,
                          hparams=hparams_dict(hparams), record_ids=[c.case_id for c in cases],
                          package_version=package_version(), prompt_format=fmt.name)
        made.save(patch)
        written.append(f"patch {patch} ({len(made.names)} tensor(s))")
    if save:
        save_model(model, tok, save)
        written.append(f"model folder {save}")
    for path in (json_path, tensors_path):
        if os.path.exists(path):
            os.unlink(path)
    ids = [c.case_id for c in cases]
    how = (f"detoxified once from {len(requests)} records {ids}" if detoxify
           else f"{len(requests)} edit(s) applied one after another (records {ids})")
    return f"{method.name}: {how}, {len(changed)} tensor(s) changed; wrote {' and '.join(written)}"
