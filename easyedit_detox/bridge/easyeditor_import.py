"""The one place that imports easyeditor, so a missing or broken install fails with instructions."""

from __future__ import annotations

import warnings

INSTALL_HINT = (
    "easyedit-detox needs easyeditor 0.0.1.dev0 importable. Its PyPI metadata pins versions that "
    "do not install on current Python, so install it without dependencies and supply them: "
    "`pip install --no-deps easyeditor==0.0.1.dev0 && pip install 'easyedit-detox[easyeditor]'` "
    "(or run `make install` in the easyedit-detox checkout). transformers must be < 4.56."
)

try:
    with warnings.catch_warnings():
        # Its import chain (timm's old module paths, ...) warns about things we cannot change.
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        import easyeditor  # noqa: F401  (imports the whole framework: slow, but BaseEditor needs it)
        from easyeditor.util import alg_dict as _alg_dict_module
        from easyeditor.util.hparams import HyperParams
except Exception as exc:  # ImportError, or anything its import chain raises (e.g. transformers >= 4.56)
    raise ImportError(f"{INSTALL_HINT} (import failed with {type(exc).__name__}: {exc})") from exc

ALG_DICT = _alg_dict_module.ALG_DICT

__all__ = ["easyeditor", "HyperParams", "ALG_DICT", "INSTALL_HINT"]
