"""Shared fixtures: tiny LLaMA- and GPT-2-shaped models with tokenizers trained offline on the sample.

The folders are built once per test session (`*_dir`); the `(model, tokenizer)` fixtures load them
afresh for every test through `from_pretrained`, so a test may edit its model without touching
another test's, and the loading code real checkpoints use is exercised.
"""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from easyedit_detox import toy


def load_pair(folder):
    """A float32, eval-mode `(model, tokenizer)` loaded from `folder`, with the RNG seeded."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model, tokenizer


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    """Folder holding a tiny LLaMA (4 layers, width 64) and its tokenizer (BOS `<s>`, pad = EOS)."""
    return toy.save_tiny(str(tmp_path_factory.mktemp("tiny_llama")), "llama", seed=0)


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    """Folder holding a tiny GPT-2 (4 layers, width 64) and its tokenizer (no pad token)."""
    return toy.save_tiny(str(tmp_path_factory.mktemp("tiny_gpt2")), "gpt2", seed=0)


@pytest.fixture
def tiny_llama(tiny_llama_dir):
    """A fresh `(model, tokenizer)` pair loaded from `tiny_llama_dir`."""
    return load_pair(tiny_llama_dir)


@pytest.fixture
def tiny_gpt2(tiny_gpt2_dir):
    """A fresh `(model, tokenizer)` pair loaded from `tiny_gpt2_dir`."""
    return load_pair(tiny_gpt2_dir)


@pytest.fixture(scope="session")
def load_tiny():
    """The loader the `tiny_*` fixtures use, for tests that save a variant model into their own folder."""
    return load_pair


@pytest.fixture
def nltk_punkt_tab(tmp_path, monkeypatch):
    """NLTK's own punkt_tab files in a temporary nltk_data folder (see punkt_data.py)."""
    import punkt_data

    yield from punkt_data.nltk_punkt_tab(tmp_path, monkeypatch)


@pytest.fixture(scope="session")
def safeedit_records():
    """The bundled SafeEdit records (list of dicts)."""
    import json

    with open(toy.sample_path(), encoding="utf-8") as f:
        return json.load(f)


# EasyEdit flavour: `@pytest.mark.pypi_only("why")` and `@pytest.mark.git_only("why")` (registered in
# setup.cfg) skip a test when the importable easyeditor is the other one: PyPI's 0.0.1.dev0 (`make test`)
# or EasyEdit from git (`make test-git`), as `easyedit_detox.easyedit.upstream.flavour()` tells them apart. The
# reason is required, and every skip is listed with its reason at the end of the run.
FLAVOUR_MARKERS = {"pypi_only": "pypi", "git_only": "git"}


def _marker_reason(marker) -> str:
    reason = marker.kwargs.get("reason", marker.args[0] if marker.args else "")
    if not isinstance(reason, str) or not reason.strip():
        raise pytest.UsageError(f"@pytest.mark.{marker.name} needs a reason: @pytest.mark.{marker.name}(\"why\")")
    return reason


def pytest_collection_modifyitems(config, items):
    from easyedit_detox.easyedit.upstream import flavour

    current = flavour()
    for item in items:
        for name, wanted in FLAVOUR_MARKERS.items():
            for marker in item.iter_markers(name):
                reason = _marker_reason(marker)
                if current != wanted:
                    item.add_marker(pytest.mark.skip(
                        reason=f"{name} (easyeditor here is the {current} flavour): {reason}"))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import importlib.util

    from easyedit_detox.easyedit.upstream import flavour

    spec = importlib.util.find_spec("easyeditor")
    where = list(spec.submodule_search_locations or [spec.origin])[0] if spec else "not installed"
    terminalreporter.write_line(f"easyeditor flavour: {flavour()} ({where})")
    skipped = terminalreporter.stats.get("skipped", [])
    reportchars = getattr(config.option, "reportchars", "") or ""
    if not skipped or "s" in reportchars or "a" in reportchars or "A" in reportchars:
        return  # pytest's own short summary lists the skips already
    terminalreporter.section("skipped tests and why", sep="-")
    for report in skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        reason = reason[len("Skipped: "):] if reason.startswith("Skipped: ") else reason
        terminalreporter.write_line(f"SKIPPED {report.nodeid}: {reason}")
