"""Files the package reads and writes: YAML mappings with clear errors, atomic writes, digests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import Iterator, Optional, Sequence, Union


from .errors import HyperParamsError, UserError


def yaml_path(path: Union[str, os.PathLike]) -> str:
    """`path` with `.yaml` added when it has no YAML suffix, as EasyEdit's `from_hparams` does."""
    path = os.fspath(path)
    return path if path.endswith((".yaml", ".yml")) else path + ".yaml"


def read_yaml(path: Union[str, os.PathLike]) -> dict:
    """The mapping an hparams YAML holds; HyperParamsError naming the file otherwise."""
    full = yaml_path(path)
    if not os.path.isfile(full):
        raise HyperParamsError(f"hparams file {full!r} does not exist; pass an EasyEdit hparams YAML "
                               "such as hparams/DINM/llama-7b.yaml")
    import yaml  # here: `compare`, which reads no YAML, starts without it

    try:
        with open(full, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except yaml.YAMLError as exc:
        raise HyperParamsError(f"hparams file {full!r} is not valid YAML: {' '.join(str(exc).split())}") from None
    except UnicodeDecodeError as exc:
        raise HyperParamsError(f"hparams file {full!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                               "save it as UTF-8") from None
    if not isinstance(config, dict):
        raise HyperParamsError(f"hparams file {full!r} must hold a mapping of keys to values, "
                               f"not {type(config).__name__}")
    return config


def default_cache_dir() -> str:
    """$EASYEDIT_DETOX_CACHE, else ~/.cache/easyedit_detox: the vanilla responses and converted models."""
    return os.environ.get("EASYEDIT_DETOX_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "easyedit_detox")


@contextlib.contextmanager
def replaced_atomically(path: Union[str, os.PathLike], suffix: str = "") -> Iterator[str]:
    """A temporary path beside `path` to write to; when the block ends it replaces `path`, or is removed on error.

    Readers see the old file or the new one, never half of one. The file gets the mode a plain open() would
    give (mkstemp and safetensors make files readable by their owner only).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=suffix or "-" + os.path.basename(path))
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def write_atomically(path: Union[str, os.PathLike], data: Union[str, bytes]) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half of one."""
    with replaced_atomically(path) as tmp, open(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)


def file_digest(path: Union[str, os.PathLike], length: int = 16) -> str:
    """The first `length` hex digits of a file's SHA-256."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def check_output_path(path: Union[str, os.PathLike], what: str, suffixes: Optional[Sequence[str]] = None) -> str:
    """`path` as a string, or UserError when its folder does not exist or its suffix is not allowed."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserError(f"cannot write the {what} '{path}': folder '{folder}' does not exist; create it "
                        "or pick another path")
    if os.path.isdir(path):
        raise UserError(f"cannot write the {what} '{path}': it is a folder; give a file name")
    if suffixes and os.path.splitext(path)[1].lower() not in suffixes:
        raise UserError(f"the {what} '{path}' must end in {' or '.join(suffixes)}")
    return path
