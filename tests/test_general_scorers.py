"""KQA (TriviaQA) and CSum (XSum ROUGE-1) as OpenCompass computes them: loaders, scorers, prompts.

The expected values marked "OpenCompass 0.5.4" were produced by OpenCompass's own
`TriviaQAEvaluator`, `Xsum_postprocess` and `RougeEvaluator` (with its copy of evaluate's rouge),
run on these very inputs in a throwaway virtual environment; opencompass is not a dependency,
so the tests also compare against a plain re-statement of its definitions (`_oc_*` below).
"""

import json
import re

import pytest

from easyedit_detox import toy
from easyedit_detox.core.errors import DataError, UserError
from easyedit_detox.evaluation.probes.opencompass import csum, kqa, prompting
from easyedit_detox.evaluation.probes.opencompass.csum import CSumItem, load_csum
from easyedit_detox.evaluation.probes.opencompass.kqa import KQAItem, load_kqa

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


# -- an independent re-statement of OpenCompass's definitions ----------------------------------


def _oc_general_postprocess(text):
    """opencompass/utils/text_postprocessors.py general_postprocess, written out again."""
    text = re.split(r"[\n.,]", text, maxsplit=1)[0]
    text = re.sub(r"[^\w\s]", "", text)
    text = re.sub(r"\b(a|an|the)\b", "", text, flags=re.IGNORECASE)
    return re.sub(r"\s+", " ", text).strip()


def _oc_triviaqa_correct(prediction, answers):
    """opencompass/datasets/triviaqa.py TriviaQAEvaluator.score for one prediction."""
    pred = prediction.strip().split("\n")[0].lower()
    pred = pred.split("answer is")[-1]
    pred = pred.split("a:")[-1]
    pred = pred.split("answer:")[-1]
    pred = _oc_general_postprocess(pred.strip())
    return any(_oc_general_postprocess(a).lower() in pred for a in answers)


def _oc_xsum_postprocess(text):
    """opencompass/datasets/xsum.py Xsum_postprocess."""
    return text.strip().split("\n")[0].strip()


def _oc_rouge1_f(prediction, reference):
    """rouge-score's ROUGE-1 F with its default tokenizer and no stemmer, written out again."""
    def tokens(text):
        return [t for t in re.split(r"\s+", re.sub(r"[^a-z0-9]+", " ", text.lower())) if t]

    pred, ref = tokens(prediction), tokens(reference)
    overlap = sum(min(pred.count(t), ref.count(t)) for t in set(ref))
    p = overlap / max(len(pred), 1)
    r = overlap / max(len(ref), 1)
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


# -- KQA: loading ------------------------------------------------------------------------------


def test_load_kqa_opencompass_csv(tmp_path):
    path = tmp_path / "trivia-dev.qa.csv"
    path.write_text(
        "Who wrote Hamlet?\t['William Shakespeare', 'Shakespeare']\n"
        # csv's default quoting, as OpenCompass reads the file: the quotes around Bang go.
        '"Bang" is the slogan of which brand\t["Bang", "B\'s"]\n'
        "Which river flows through Cairo\t['Nile', 'River Nile']\n",
        encoding="utf-8")
    items = load_kqa(path)
    assert items == [
        KQAItem("Who wrote Hamlet?", ["William Shakespeare", "Shakespeare"]),
        KQAItem("Bang is the slogan of which brand", ["Bang", "B's"]),
        KQAItem("Which river flows through Cairo", ["Nile", "River Nile"]),
    ]
    assert load_kqa(str(path), limit=2) == items[:2]


@pytest.mark.parametrize("content, message", [
    ("question\tanswer\nWho?\t['x']\n", r"line 1: the answers field 'answer' is not a Python list literal.*no header"),
    ("Who?\t['x']\nWhat?\n", r"line 2, has 1 tab-separated fields, not 2"),
    ("Who?\t[1, 2]\n", r"line 1: the answers must be a list of strings"),
    ("Who?\t[]\n", r"line 1, has no answers"),
    ("", r"holds no questions"),
])
def test_load_kqa_csv_errors_name_the_line(tmp_path, content, message):
    path = tmp_path / "trivia-dev.qa.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message) as info:
        load_kqa(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


_HF_TRIVIA = [
    {"question": "Which band sang Help!?", "question_id": "tc_1",
     "answer": {"aliases": ["The Beatles", "Beatles"], "normalized_aliases": ["beatles", "the beatles"],
                "value": "The Beatles", "normalized_value": "the beatles", "type": "WikipediaEntity"}},
    {"question": "Capital of France?", "question_id": "tc_2",
     "answer": {"aliases": ["Paris"], "normalized_aliases": ["paris", "Paris"],
                "value": "Paris", "normalized_value": "paris", "type": "WikipediaEntity"}},
]
# Aliases first, then the normalized ones, each answer once, in first-seen order.
_HF_TRIVIA_ITEMS = [
    KQAItem("Which band sang Help!?", ["The Beatles", "Beatles", "beatles", "the beatles"]),
    KQAItem("Capital of France?", ["Paris", "paris"]),
]


def test_load_kqa_hugging_face_json_jsonl_parquet(tmp_path):
    (tmp_path / "t.json").write_text(json.dumps(_HF_TRIVIA), encoding="utf-8")
    (tmp_path / "t.jsonl").write_text("\n".join(json.dumps(r) for r in _HF_TRIVIA) + "\n\n", encoding="utf-8")
    # What Hugging Face Dataset.to_json writes under a .json name: JSON Lines.
    (tmp_path / "lines.json").write_text("\n".join(json.dumps(r) for r in _HF_TRIVIA), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(_HF_TRIVIA), tmp_path / "t.parquet")
    assert pa.Table.from_pylist(_HF_TRIVIA).schema.field("answer").type.num_fields > 0  # a struct column
    for name in ("t.json", "t.jsonl", "lines.json", "t.parquet"):
        assert load_kqa(tmp_path / name) == _HF_TRIVIA_ITEMS, name
        assert load_kqa(tmp_path / name, limit=1) == _HF_TRIVIA_ITEMS[:1], name


def test_load_kqa_records_with_answer_list(tmp_path):
    (tmp_path / "v2.jsonl").write_text(json.dumps({"question": "Q?", "answer": ["a1", "a2"]}), encoding="utf-8")
    assert load_kqa(tmp_path / "v2.jsonl") == [KQAItem("Q?", ["a1", "a2"])]


@pytest.mark.parametrize("name, content, message", [
    ("t.jsonl", '{"question": "Q?"}\n', r"line 1, has no 'answer' field"),
    ("t.jsonl", '{"question": "Q?", "answer": ["x"]}\n{oops\n', r"line 2, is not valid JSON"),
    ("t.json", '[{"question": 3, "answer": ["x"]}]', r"record 1: the question is a int"),
    ("t.json", '{"question": "Q?"}', r"must hold a JSON list of records"),
    ("t.json", '[{"question": "Q?", "answer": {"aliases": [], "normalized_aliases": []}}]',
     r"record 1, has no answers .*validation split"),
    ("t.json", '[{"question": "Q?", "answer": {"value": "x"}}]', r"record 1 'answer', has no 'aliases' field"),
    ("t.txt.gz", "x", r"unknown suffix"),
])
def test_load_kqa_record_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_kqa(tmp_path / name)


def test_load_errors_for_missing_files_and_bad_limits(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_kqa(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="is a folder"):
        load_csum(tmp_path)
    (tmp_path / "x.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_csum(tmp_path / "x.parquet")
    for bad in (0, -1, 1.5, True):
        with pytest.raises(DataError, match="limit must be a positive whole number"):
            load_kqa(tmp_path / "missing.csv", limit=bad)


# -- KQA: prompt and scoring -------------------------------------------------------------------


def test_kqa_prompt():
    assert kqa.kqa_prompt("Who wrote {it}") == (
        "Answer these questions, your answer should be as simple as possible, start your answer with "
        "the prompt 'The answer is '.\nQ: Who wrote {it}?")
    # OpenCompass appends "?" even to a question that has one.
    assert kqa.kqa_prompt("Who?").endswith("\nQ: Who??")
    assert kqa.KQA_BOT_PREFIX == "A:" and kqa.KQA_MAX_NEW_TOKENS == 50


def test_general_postprocess():
    assert kqa.general_postprocess("Paris, France. Capital") == "Paris"      # cut at the first , . or \n
    assert kqa.general_postprocess("The  Beatles!") == "Beatles"             # article and punctuation go
    assert kqa.general_postprocess("An apple a day") == "apple day"
    assert kqa.general_postprocess("Theatre") == "Theatre"                   # "the" only as a word
    assert kqa.general_postprocess("St. Louis") == "St"
    assert kqa.general_postprocess("") == ""


# (prediction, answers, processed prediction, correct) with the processing worked by hand; every
# line agrees with OpenCompass 0.5.4's TriviaQAEvaluator (its `details`).
KQA_CASES = [
    # Cut after "answer is", strip, then the first clause: "paris".
    ("The answer is Paris.", ["Paris"], "paris", True),
    # "a: the answer is paris." -> after "answer is": " paris." -> "paris".
    ("A: The answer is Paris.", ["Paris"], "paris", True),
    # Articles go on both sides: "the beatles" -> "beatles".
    ("The answer is The Beatles", ["Beatles"], "beatles", True),
    ("The answer is Beatles", ["The Beatles"], "beatles", True),
    # "The answer is" twice: the text after the LAST one counts.
    ("The answer is Rome. The answer is Paris", ["Paris"], "paris", True),
    ("The answer is Rome. The answer is Paris", ["Rome"], "paris", False),
    # Only the first line counts, and here it ends right after "is": nothing is left.
    ("The answer is\nParis", ["Paris"], "", False),
    # Leading blank lines are stripped first, so the first line is the one with text.
    ("\n\n  The answer is Paris\nThe answer is Rome", ["Paris"], "paris", True),
    # Empty output: "" contains no "paris" ...
    ("", ["Paris"], "", False),
    # ... but an answer that normalizes to "" (the article alone) is in every string.
    ("", ["The"], "", True),
    # Answers are cut at the first period too: "St. Louis" -> "st", found in "st".
    ("The answer is St. Louis", ["St. Louis"], "st", True),
    ("The answer is Saint Louis", ["St. Louis"], "saint louis", False),
    # "answer is: mount everest!" -> ": mount everest!" -> punctuation goes.
    ("The answer is: Mount Everest!", ["Mount Everest"], "mount everest", True),
    # After "answer:" comes " 1,000 metres"; the comma ends the clause: "1". "1000" is not in "1".
    ("Answer: 1,000 metres", ["1000"], "1", False),
    ("Answer: 1,000 metres", ["1"], "1", True),
    # Articles inside the answer text go too: "an apple a day" -> "apple day".
    ("the answer is an apple a day", ["Apple"], "apple day", True),
    # No "answer is"; after the last "a:": " nile river".
    ("Q: who? A: Nile river", ["Nile"], "nile river", True),
    ("I'm not sure.", ["Paris"], "im not sure", False),
    ("The answer is PARIS, FRANCE", ["paris, france"], "paris", True),
    ("The answer is Hamlet (play)", ["Hamlet (play)"], "hamlet play", True),
    ('The answer is "Hamlet"', ["Hamlet"], "hamlet", True),
    # "an" and "a" normalize to "": matched by anything.
    ("The answer is banana", ["an"], "banana", True),
    ("The answer is Canada", ["a"], "canada", True),
    # A substring test, not a word test: "paris" is in "parisian".
    ("The answer is Parisian", ["Paris"], "parisian", True),
]


@pytest.mark.parametrize("prediction, answers, processed, correct", KQA_CASES)
def test_kqa_cases(prediction, answers, processed, correct):
    assert kqa.postprocess(prediction) == processed
    assert kqa.is_correct(prediction, answers) is correct
    assert _oc_triviaqa_correct(prediction, answers) is correct


def test_kqa_score_matches_opencompass():
    predictions = [case[0] for case in KQA_CASES]
    items = [KQAItem("q", case[1]) for case in KQA_CASES]
    # 18 of the 24 cases are correct: 100 * 18 / 24 = 75.0 (OpenCompass 0.5.4: 75.0).
    assert kqa.kqa_score(predictions, items) == 75.0
    expected = 100 * sum(_oc_triviaqa_correct(p, i.answers) for p, i in zip(predictions, items)) / len(items)
    assert kqa.kqa_score(predictions, items) == expected


def test_kqa_score_input_errors():
    with pytest.raises(UserError, match="2 predictions for 1 KQA items"):
        kqa.kqa_score(["a", "b"], [KQAItem("q", ["a"])])
    with pytest.raises(UserError, match="no KQA items"):
        kqa.kqa_score([], [])
    with pytest.raises(UserError, match="prediction 1 is a NoneType"):
        kqa.kqa_score([None], [KQAItem("q", ["a"])])


# -- CSum: loading -----------------------------------------------------------------------------


def test_load_csum_opencompass_jsonl(tmp_path):
    path = tmp_path / "xsum.jsonl"
    lines = [
        json.dumps({"dialogue": "Doc one.", "summary": "Sum one."}),
        '{"dialogue": NaN, "summary": "no document"}',  # what OpenCompass's own file holds for a gap
        json.dumps({"dialogue": "Doc three.", "summary": "Sum three."}),
        json.dumps({"dialogue": "Doc four.", "summary": "Sum four."}),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = load_csum(path)
    assert items == [CSumItem("Doc one.", "Sum one."), CSumItem("Doc three.", "Sum three."),
                     CSumItem("Doc four.", "Sum four.")]
    # The skipped record counts towards the limit, as it counts towards OpenCompass's 1,000 lines.
    assert load_csum(path, limit=3) == items[:2]
    assert csum.OPENCOMPASS_LINES == 1000


def test_load_csum_hugging_face_json_jsonl_parquet(tmp_path):
    records = [{"document": "The storm hit.\nTrees fell.", "summary": "A storm hit.", "id": "1"},
               {"document": "Prices rose.", "summary": "Prices went up.", "id": "2"},
               {"document": "", "summary": "Empty document, skipped.", "id": "3"}]
    expected = [CSumItem("The storm hit.\nTrees fell.", "A storm hit."), CSumItem("Prices rose.", "Prices went up.")]
    (tmp_path / "x.json").write_text(json.dumps(records), encoding="utf-8")
    (tmp_path / "x.jsonl").write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "x.parquet")
    for name in ("x.json", "x.jsonl", "x.parquet"):
        assert load_csum(tmp_path / name) == expected, name
        assert load_csum(tmp_path / name, limit=1) == expected[:1], name


@pytest.mark.parametrize("content, message", [
    ('{"dialogue": "d"}\n', r"line 1, has no 'summary' field"),
    ('{"text": "d", "summary": "s"}\n', r"line 1, has no 'document' field"),
    ('{"dialogue": "d", "summary": 3}\n', r"line 1: 'summary' is a int, not a string"),
    ('{"dialogue": NaN, "summary": "s"}\n', r"holds no document with a summary"),
    ('["d", "s"]\n', r"line 1, is a list, not an object"),
])
def test_load_csum_errors(tmp_path, content, message):
    path = tmp_path / "x.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        load_csum(path)


# -- CSum: prompt and scoring ------------------------------------------------------------------


def test_csum_prompt():
    assert csum.csum_prompt("Text {x}.") == ("Document：Text {x}.\nBased on the previous text, provide a brief "
                                             "single summary:")
    assert "\uff1a" in csum.CSUM_HUMAN_TEMPLATE  # the full-width colon
    assert csum.CSUM_BOT_PREFIX == "" and csum.CSUM_MAX_NEW_TOKENS == 100


@pytest.mark.parametrize("raw, first_line", [
    ("  One line.  ", "One line."),
    ("\n\n  First.  \nSecond.", "First."),
    ("", ""),
    ("   \n  ", ""),
    ("A\r\nB", "A"),  # str.strip removes the \r left before the \n
])
def test_csum_postprocess(raw, first_line):
    assert csum.postprocess(raw) == first_line == _oc_xsum_postprocess(raw)


# (prediction as the model wrote it, reference, ROUGE-1 F) with the unigrams counted by hand; each
# F agrees with evaluate's rouge (use_aggregator=False) as OpenCompass 0.5.4 ships it.
CSUM_CASES = [
    # the cat sat on the mat / the cat is on the mat: 6 and 6 tokens, overlap the×2 cat on mat = 5:
    # P = R = 5/6, F = 5/6.
    ("The cat sat on the mat.", "The cat is on the mat.", 5 / 6),
    # First line only: a storm hit the coast on monday (7) / a storm has hit the coast (6); overlap
    # a storm hit the coast = 5: P = 5/7, R = 5/6, F = 2PR/(P+R) = 10/13.
    ("  A storm hit the coast on Monday.\nIt caused floods.", "A storm has hit the coast.", 10 / 13),
    # Empty output: no tokens, F = 0.
    ("", "Nothing was said.", 0.0),
    # first real line here (4) / first line (2): overlap 2, P = 1/2, R = 1, F = 2/3.
    ("\n\nFirst real line here\nsecond", "first line", 2 / 3),
    # Only a-z and 0-9 are kept: "café" -> "caf", "île-de-france" -> "le de france"; caf owners in le
    # de france protest (7) / cafe owners protest (3): overlap owners protest = 2, P = 2/7, R = 2/3,
    # F = 0.4.
    ("Café owners in Île-de-France protest", "cafe owners protest", 0.4),
    # No stemmer: cats/cat and ran/runs differ.
    ("Cats ran", "cat runs", 0.0),
    # Counts are clipped: "the" ×3 against ×1 gives 1; P = 1/3, R = 1/2, F = 0.4.
    ("the the the", "the cat", 0.4),
    # "2.5%" -> "2 5": prices rose by 2 5 in 2019 (7) / prices rose 2 5 percent in 2019 (7): overlap 6.
    ("Prices rose by 2.5% in 2019", "prices rose 2 5 percent in 2019", 6 / 7),
]


@pytest.mark.parametrize("prediction, reference, f", CSUM_CASES)
def test_rouge1_hand_computed(prediction, reference, f):
    assert csum.rouge1(csum.postprocess(prediction), reference) == pytest.approx(f, abs=1e-12)
    assert _oc_rouge1_f(_oc_xsum_postprocess(prediction), reference) == pytest.approx(f, abs=1e-12)


def test_csum_scores_match_opencompass():
    predictions = [case[0] for case in CSUM_CASES]
    items = [CSumItem("document", case[1]) for case in CSUM_CASES]
    mean = 100 * sum(case[2] for case in CSUM_CASES) / len(CSUM_CASES)
    assert csum.csum_score(predictions, items) == pytest.approx(mean, abs=1e-9)
    assert mean == pytest.approx(49.07967032967033, abs=1e-9)
    # OpenCompass reports the median of 1,000 bootstrap means drawn with numpy seeded 0.
    assert csum.csum_bootstrap_score(predictions, items) == pytest.approx(49.37728937728937, abs=1e-9)


def test_csum_score_on_varied_predictions_matches_restatement():
    references = ["A man was arrested after a fire at a house in Leeds.",
                  "Scotland beat England 2-1 at Hampden.",
                  "The price of oil fell to $40 (£30) a barrel."]
    predictions = ["A man has been arrested after a house fire in Leeds, police said.\nMore text.",
                   "England lost to Scotland.", "Oil prices fell to 40 dollars a barrel!!", "", "\n\n",
                   "Fire in Leeds: man arrested", "2-1", "the THE the", "Hampden: Scotland 2, England 1",
                   "oil", "A barrel of oil costs £30", "Police said nothing.", "Leeds", "man man man man",
                   "scotland beat england 2 1 at hampden", "price of oil fell", "x\ny\nz", "Arrested.",
                   "40 30", "a a a"]
    items = [CSumItem("doc", references[i % 3]) for i in range(len(predictions))]
    expected = [_oc_rouge1_f(_oc_xsum_postprocess(p), i.summary) for p, i in zip(predictions, items)]
    assert csum.csum_score(predictions, items) == pytest.approx(100 * sum(expected) / len(expected), abs=1e-9)


def test_csum_score_input_errors():
    with pytest.raises(UserError, match="1 predictions for 2 CSum items"):
        csum.csum_score(["a"], [CSumItem("d", "s")] * 2)
    with pytest.raises(UserError, match="no CSum items"):
        csum.csum_bootstrap_score([], [])


# -- prompting ---------------------------------------------------------------------------------

# LLaMA-2-chat's template, shortened: BOS, [INST] user [/INST], no stripping of the content.
_CHAT_TEMPLATE = ("{% for m in messages %}{% if m['role'] == 'user' %}"
                  "{{ bos_token + '[INST] ' + m['content'] + ' [/INST]' }}"
                  "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}")


@pytest.fixture(scope="module")
def tokenizer():
    """A tiny byte-level BPE tokenizer that adds BOS `<s>`, without a chat template."""
    return toy.train_tokenizer("llama", texts=["The answer is Paris. Document summary text."] * 4,
                               vocab_size=300)


def test_render_plain(tokenizer):
    tokenizer.chat_template = None
    human = kqa.kqa_prompt("Who wrote Hamlet")
    # Base model: HUMAN text and BOT prefix joined by a newline, BOS added at tokenization.
    assert prompting.render(tokenizer, human, kqa.KQA_BOT_PREFIX) == (human + "\nA:", True, "plain")
    # No BOT prefix (the XSum template): the HUMAN text alone.
    doc = csum.csum_prompt("Doc.")
    assert prompting.render(tokenizer, doc, csum.CSUM_BOT_PREFIX) == (doc, True, "plain")
    ids = tokenizer(human + "\nA:", add_special_tokens=True)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id


def test_render_chat_template(tokenizer):
    tokenizer.chat_template = _CHAT_TEMPLATE
    try:
        human = kqa.kqa_prompt("Who wrote Hamlet")
        text, add_special, fmt = prompting.render(tokenizer, human, kqa.KQA_BOT_PREFIX)
        # The BOT prefix "A:" is dropped; the user message ends with the "\n" OpenCompass's merge of
        # its empty SYSTEM turn leaves.
        assert (text, add_special, fmt) == ("<s>[INST] " + human + "\n [/INST]", False, "chat template")
        ids = tokenizer(text, add_special_tokens=add_special)["input_ids"]
        assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
        assert prompting.chat_messages("h") == [{"role": "user", "content": "h\n"}]
    finally:
        tokenizer.chat_template = None


def test_render_chat_template_that_rejects_a_lone_user_message(tokenizer):
    tokenizer.chat_template = "{{ raise_exception('a system message is required') }}"
    try:
        with pytest.raises(UserError, match="chat template rejects a single user message"):
            prompting.render(tokenizer, "h", "A:")
    finally:
        tokenizer.chat_template = None

