"""The one place that imports easyeditor: lazily, with install instructions, and knowing which EasyEdit it is.

Two EasyEdits exist: PyPI's `easyeditor` 0.0.1.dev0 (October 2023) and the git repository most
researchers install. They differ in what `BaseEditor.edit` expects back from a method (see
`returns_originals` below), in hard-coded CUDA (PyPI) and in the methods they ship. `flavour()` tells
them apart without importing easyeditor, whose import chain takes seconds.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import logging
import os
import warnings

PYPI, GIT = "pypi", "git"

INSTALL_HINT = (
    "easyedit-detox needs easyeditor importable: either EasyEdit from git (put its checkout on "
    "PYTHONPATH or `pip install -e` it; see `make test-git`) or PyPI's 0.0.1.dev0, whose metadata "
    "pins versions that do not install on current Python, so install that one without dependencies: "
    "`pip install --no-deps easyeditor==0.0.1.dev0 && pip install 'easyedit-detox[easyeditor]'` "
    "(PyPI's easyeditor needs transformers < 4.56)."
)


@functools.lru_cache(maxsize=None)
def flavour() -> str:
    """'git' when the importable easyeditor is EasyEdit's git version, else 'pypi' (also when it is missing)."""
    spec = importlib.util.find_spec("easyeditor")
    if spec is None or not spec.submodule_search_locations:
        return PYPI
    folder = list(spec.submodule_search_locations)[0]
    # util/device.py and editors/safety_editor.py arrived in EasyEdit's git history after the PyPI release.
    git_only = ("util/device.py", "editors/safety_editor.py")
    return GIT if any(os.path.exists(os.path.join(folder, *p.split("/"))) for p in git_only) else PYPI


@contextlib.contextmanager
def root_logging_kept():
    """Inside the block, changes to the root logger's level and handlers are undone on exit.

    easyeditor's `editors/editor.py` calls `logging.basicConfig(level=INFO)` at import, which would set the
    host program's root logger to INFO with a stderr handler: a library must leave its caller's logging alone.
    """
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    try:
        yield
    finally:
        for handler in list(root.handlers):
            if handler not in handlers:
                root.removeHandler(handler)
        root.setLevel(level)


@functools.lru_cache(maxsize=None)
def easyeditor():
    """The imported `easyeditor` package; ImportError with install instructions when it cannot import."""
    try:
        with warnings.catch_warnings(), root_logging_kept():
            # Its import chain (timm's old module paths, ...) warns about things we cannot change.
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            import easyeditor as module  # imports the whole framework: slow, so only when needed
    except Exception as exc:  # ImportError, or anything its import chain raises (transformers >= 4.56 for PyPI's)
        raise ImportError(f"{INSTALL_HINT} (import failed with {type(exc).__name__}: {exc})") from exc
    return module


def alg_dict() -> dict:
    """easyeditor's ALG_DICT: the dict BaseEditor looks methods up in (the same object everywhere)."""
    easyeditor()
    from easyeditor.util import alg_dict as module

    return module.ALG_DICT


def hyperparams_base() -> type:
    """easyeditor's `HyperParams` base class, which every method's hparams class subclasses."""
    easyeditor()
    from easyeditor.util.hparams import HyperParams

    return HyperParams


def is_loaded() -> bool:
    """Whether easyeditor has been imported in this process (by us or by anyone)."""
    import sys

    return "easyeditor" in sys.modules


def returns_originals(return_orig_weights: bool, keep_original_weight: bool) -> bool:
    """Whether an apply function hands back the original tensors, under the installed EasyEdit's convention.

    PyPI's BaseEditor restores from them only when `keep_original_weight`, and its methods return
    them only then. Git's BaseEditor always passes `keep_original_weight=False, return_orig_weights=True`
    and restores from what comes back unless `sequential_edit`, as its FT, ROME and MEMIT expect.
    """
    if flavour() == GIT:
        return bool(return_orig_weights)
    return bool(return_orig_weights and keep_original_weight)
