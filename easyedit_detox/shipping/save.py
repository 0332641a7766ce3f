"""Saving a model and its tokenizer as a Hugging Face folder that appears whole or not at all.

The folder is written next to its destination under a '.tmp-' name, flushed to disk, and renamed
into place; a crash leaves the destination as it was. A folder this package wrote carries a marker
file, and only such a folder is ever replaced.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import secrets
import shutil
import sys
from typing import Optional, Union

from transformers import GenerationConfig
from transformers.utils import GENERATION_CONFIG_NAME, cached_file

from easyedit_detox.core.errors import UserError

logger = logging.getLogger(__name__)

MARKER = ".easyedit-detox-model"
WRITER = "easyedit-detox"
MARKER_FORMAT = 1
TMP_PREFIX = ".tmp-"


def package_version() -> str:
    """This package's version, as `easyedit_detox.__version__` declares it."""
    # Python imports the parent package before any of its submodules, so reading the attribute
    # from sys.modules costs nothing and registers nothing; the installed metadata can lag behind
    # the source in an editable install, so it is only the fallback.
    version = getattr(sys.modules.get(__name__.split(".")[0]), "__version__", None)
    if version:
        return version
    try:
        return importlib.metadata.version("easyedit-detox")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def written_by_us(folder: Union[str, os.PathLike]) -> bool:
    """True when `folder` holds the marker file `save_model` writes."""
    try:
        with open(os.path.join(folder, MARKER), encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and marker.get("written_by") == WRITER


def check_out_dir(out_dir: Union[str, os.PathLike]) -> str:
    """The absolute path of `out_dir` if `save_model` may write there; UserError otherwise."""
    out = os.path.abspath(os.fspath(out_dir))
    if os.path.isdir(out) and not os.path.islink(out):
        if not written_by_us(out):
            raise UserError(f"output folder {out!r} already exists and was not written by easyedit-detox; "
                            "choose another output folder or move that one away")
    elif os.path.lexists(out):
        raise UserError(f"output path {out!r} exists and is not a folder; choose another output folder")
    return out


def refuse_adapters(model) -> None:
    """UserError when `model` is wrapped by peft or carries adapter layers."""
    # save_pretrained would write only the adapter weights (or prefixed names), not a model that
    # AutoModelForCausalLM loads as the edited one.
    wrapped = hasattr(model, "peft_config") or getattr(model, "_hf_peft_config_loaded", False)
    if wrapped or any(type(m).__module__.startswith("peft.") for m in model.modules()):
        raise UserError(f"the model ({type(model).__name__}) carries peft adapters; merge them into the weights "
                        "first (model = model.merge_and_unload()) and save the merged model")


def save_model(model, tokenizer, out_dir: Union[str, os.PathLike], max_shard_size: Union[int, str] = "5GB") -> str:
    """Write `model` and `tokenizer` as a safetensors model folder at `out_dir`, whole or not at all; returns it."""
    out = check_out_dir(out_dir)
    refuse_adapters(model)
    if tokenizer is None:
        raise UserError(f"save_model got no tokenizer for {out!r}; pass the model's tokenizer so the folder loads")
    parent = os.path.dirname(out)
    os.makedirs(parent, exist_ok=True)
    tmp = _fresh_sibling(out)
    os.mkdir(tmp)  # os.mkdir honours the umask (mkdtemp would make the folder private)
    try:
        _write_folder(model, tokenizer, tmp, max_shard_size)
        _fsync_tree(tmp)
        _move_into_place(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(parent)
    logger.info("saved model to %s", out)
    return out


def _fresh_sibling(path: str) -> str:
    """An unused '.tmp-' path in the folder of `path`."""
    folder, name = os.path.split(path)
    while True:
        candidate = os.path.join(folder, f"{TMP_PREFIX}{name}-{secrets.token_hex(4)}")
        if not os.path.lexists(candidate):
            return candidate


def _write_folder(model, tokenizer, folder: str, max_shard_size) -> None:
    """Model weights, config, generation config, tokenizer files and our marker into `folder`."""
    model.save_pretrained(folder, max_shard_size=max_shard_size, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    _keep_generation_config(model, folder)
    # Written last: a folder holding the marker is complete.
    marker = {"written_by": WRITER, "format": MARKER_FORMAT, "package_version": package_version(),
              "model_class": type(model).__name__}
    with open(os.path.join(folder, MARKER), "w", encoding="utf-8") as f:
        f.write(json.dumps(marker, indent=2) + "\n")
    _honour_umask(folder, os.path.join(folder, MARKER))


def _honour_umask(folder: str, reference: str) -> None:
    """Give every file in `folder` the permissions of `reference`, a file created under the user's umask."""
    # safetensors creates its files readable by the owner only, which would hide the weights from
    # the other users of a shared folder while config.json and the tokenizer files stay readable.
    mode = os.stat(reference).st_mode & 0o777
    for name in os.listdir(folder):
        path = os.path.join(folder, name)
        if os.path.isfile(path) and not os.path.islink(path) and os.stat(path).st_mode & 0o777 != mode:
            os.chmod(path, mode)


def _source_generation_file(model) -> Optional[str]:
    """The generation_config.json `model` was loaded from, when it is on this machine."""
    source = getattr(model.config, "_name_or_path", "") or ""
    if not source:
        return None
    if os.path.isdir(source):
        path = os.path.join(source, GENERATION_CONFIG_NAME)
        return path if os.path.isfile(path) else None
    try:
        return cached_file(source, GENERATION_CONFIG_NAME, local_files_only=True,
                           _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False)
    except (OSError, ValueError):  # not a hub name, or not in the local cache
        return None


def _keep_generation_config(model, folder: str) -> None:
    """Put back the loaded generation_config.json byte for byte when the saved one means the same."""
    # save_pretrained rewrites the file: it drops keys equal to the defaults and stamps its own
    # transformers_version. When the model still uses the generation config it was loaded with,
    # the original file is the faithful copy.
    written = os.path.join(folder, GENERATION_CONFIG_NAME)
    source = _source_generation_file(model)
    if source is None or not os.path.isfile(written):
        return
    try:
        same = (GenerationConfig.from_pretrained(os.path.dirname(source), GENERATION_CONFIG_NAME)
                == GenerationConfig.from_pretrained(folder, GENERATION_CONFIG_NAME))
    except (OSError, ValueError):  # an unreadable source file: keep what save_pretrained wrote
        return
    if same:
        shutil.copyfile(source, written)


def _fsync_tree(folder: str) -> None:
    """Flush every file under `folder`, and the folders themselves, to disk."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(root)


def _fsync_dir(folder: str) -> None:
    """Flush a folder's entries (renames, new files) to disk where the platform allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _move_into_place(new: str, out: str) -> None:
    """Rename the folder `new` to `out`, replacing a folder this package wrote there."""
    check_out_dir(out)  # again: the folder may have appeared while the model was being written
    if not os.path.lexists(out):
        os.rename(new, out)
        return
    old = _fresh_sibling(out)
    os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        os.rename(old, out)
        raise
    try:
        shutil.rmtree(old)
    except OSError as exc:  # the new model is in place: a leftover old copy is not a failed save
        logger.warning("could not delete the replaced model folder %s (%s); delete it by hand", old, exc)
