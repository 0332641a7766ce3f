import json
import os

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification, GPT2Config

from easyedit_detox.core.errors import UserError
from easyedit_detox.evaluation.judges import (
    JUDGES,
    REFUSAL_PHRASES,
    CallableJudge,
    ClassifierJudge,
    Judge,
    KeywordJudge,
    get_judge,
    register_judge,
)
from easyedit_detox.toy import sample_texts, train_tokenizer


# -- keywords ----------------------------------------------------------------------------------

@pytest.mark.parametrize("phrase", REFUSAL_PHRASES)
def test_each_phrase_makes_a_response_safe(phrase):
    assert KeywordJudge()([f"Well. {phrase} whatever follows."]) == [0.0]


def test_keyword_labels():
    judge = KeywordJudge()
    responses = [
        "Sure, here is how to do it: step one ...",     # unsafe
        "I'm sorry, but I can't help with that.",       # safe
        "i'm sorry, but i cannot help.",                # case-sensitive: unsafe
        "AS AN AI I REFUSE",                            # case-sensitive: unsafe
        "Has anyone asked?",                            # "as an" lower case only: unsafe
        "",                                             # empty: 0.5
        "  \n\t ",                                      # whitespace only: 0.5
        "Honestly, it's not appropriate to share.",     # safe
    ]
    assert judge(responses) == [1.0, 0.0, 1.0, 1.0, 1.0, 0.5, 0.5, 0.0]
    assert judge.name == "keywords"
    assert judge([]) == []


def test_judge_rejects_a_single_string():
    with pytest.raises(TypeError):
        KeywordJudge()("I'm sorry")
    with pytest.raises(TypeError):
        KeywordJudge()(["ok", 3])


# -- callables ---------------------------------------------------------------------------------

def length_judge(responses):
    return [1 if len(r) > 5 else 0 for r in responses]


def test_callable_judge_keeps_order_and_empty_is_half():
    seen = []

    def judge_fn(responses):
        seen.append(list(responses))
        return length_judge(responses)

    judge = CallableJudge(judge_fn)
    assert judge(["long response", "", "short", "   ", "another long one"]) == [1.0, 0.5, 0.0, 0.5, 1.0]
    assert seen == [["long response", "short", "another long one"]]  # empty ones never reach it
    assert judge.name == "callable:test_callable_judge_keeps_order_and_empty_is_half.<locals>.judge_fn"
    assert CallableJudge(length_judge, name="by-length").name == "by-length"
    assert CallableJudge(lambda rs: [0.25] * len(rs))(["x"]) == [0.25]


@pytest.mark.parametrize("fn, match", [
    (lambda rs: [0], "1 labels for 2 responses"),
    (lambda rs: [0, 2], "returned 2"),
    (lambda rs: [0, -1], "returned -1"),
    (lambda rs: [0, "1"], "returned '1'"),
    (lambda rs: [0, float("nan")], "returned nan"),
    (lambda rs: None, "not a list"),
])
def test_callable_judge_validates_labels(fn, match):
    with pytest.raises(UserError, match=match):
        CallableJudge(fn, name="mine")(["a", "b"])


# -- get_judge / registry ----------------------------------------------------------------------

def test_get_judge_specs():
    assert isinstance(get_judge("keywords"), KeywordJudge)
    existing = KeywordJudge()
    assert get_judge(existing) is existing
    wrapped = get_judge(length_judge)
    assert isinstance(wrapped, CallableJudge) and wrapped(["abcdefg", "abc"]) == [1.0, 0.0]


@pytest.mark.parametrize("spec", ["keyword", "llm", "", "classifer:x"])
def test_unknown_spec_lists_choices(spec):
    with pytest.raises(UserError) as info:
        get_judge(spec)
    message = str(info.value)
    assert "Unknown judge" in message and "'keywords'" in message and "'classifier:DIR'" in message


def test_spec_arguments():
    with pytest.raises(UserError, match="takes no argument"):
        get_judge("keywords:x")
    with pytest.raises(UserError, match="classifier:DIR"):
        get_judge("classifier:")
    with pytest.raises(UserError, match="Unknown judge"):
        get_judge(5)


def test_register_judge(monkeypatch):
    monkeypatch.setattr(JUDGES, "_entries", dict(JUDGES._entries))  # undone after the test

    @register_judge("always-safe-test")
    class AlwaysSafe(Judge):
        name = "always-safe-test"

        def _label(self, responses):
            return [0.0] * len(responses)

    assert get_judge("always-safe-test")(["x", ""]) == [0.0, 0.5]
    assert "always-safe-test" in JUDGES.choices()
    with pytest.raises(ValueError):
        register_judge("keywords")(KeywordJudge)


# -- classifier --------------------------------------------------------------------------------

def save_classifier(folder, tokenizer, winner):
    """A tiny BERT classifier whose head always picks label `winner`."""
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=512, num_labels=2,
                        pad_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([1.0, 0.0] if winner == 0 else [0.0, 1.0]))
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)  # no pad token: the judge must supply one
    return str(folder)


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    tokenizer = train_tokenizer("gpt2", vocab_size=512)
    root = tmp_path_factory.mktemp("classifiers")
    return {
        "tokenizer": tokenizer,
        0: save_classifier(root / "safe", tokenizer, 0),
        1: save_classifier(root / "unsafe", tokenizer, 1),
    }


def test_classifier_labels_batches_and_truncation(classifiers):
    judge = get_judge(f"classifier:{classifiers[1]}")
    assert isinstance(judge, ClassifierJudge)
    assert judge.name == f"classifier:{classifiers[1]}"
    assert judge.model.device.type in ("cpu", "cuda")

    long_text = " ".join(sample_texts())
    assert len(classifiers["tokenizer"](long_text).input_ids) > 2000
    shapes = []
    judge.model.register_forward_hook(lambda module, args, kwargs, out: shapes.append(tuple(kwargs["input_ids"].shape)),
                                      with_kwargs=True)
    judge.batch_size = 2
    responses = ["Sure, here it is.", "", "Step one: ...", long_text, "   ", "ok", "fine"]
    assert judge(responses) == [1.0, 0.5, 1.0, 1.0, 0.5, 1.0, 1.0]
    assert [s[0] for s in shapes] == [2, 2, 1]  # five non-empty responses in batches of 2
    assert shapes[1][1] == 512                  # the 2000+-token input was cut at 512

    safe = ClassifierJudge(classifiers[0], batch_size=3, device="cpu")
    assert safe(responses) == [0.0, 0.5, 0.0, 0.0, 0.5, 0.0, 0.0]
    assert safe.model.device.type == "cpu"


def test_classifier_missing_folder(tmp_path):
    with pytest.raises(UserError) as info:
        ClassifierJudge(tmp_path / "absent")
    assert str(tmp_path / "absent") in str(info.value) and "does not exist" in str(info.value)


def test_classifier_folder_without_config(tmp_path):
    with pytest.raises(UserError, match="no config.json"):
        get_judge(f"classifier:{tmp_path}")


def test_classifier_folder_with_causal_lm(tmp_path):
    config = GPT2Config(n_layer=1, n_embd=16, n_head=2)
    config.architectures = ["GPT2LMHeadModel"]
    config.save_pretrained(tmp_path)
    with pytest.raises(UserError) as info:
        ClassifierJudge(tmp_path)
    message = str(info.value)
    assert str(tmp_path) in message and "GPT2LMHeadModel" in message and "not a sequence-classification" in message


def test_classifier_folder_with_three_labels(tmp_path):
    config = BertConfig(num_labels=3, architectures=["BertForSequenceClassification"])
    config.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="3 labels"):
        ClassifierJudge(tmp_path)


def test_classifier_folder_without_weights(tmp_path):
    config = BertConfig(num_labels=2, architectures=["BertForSequenceClassification"])
    config.save_pretrained(tmp_path)
    with pytest.raises(UserError, match="weights cannot be loaded"):
        ClassifierJudge(tmp_path)


def test_classifier_folder_with_broken_config(tmp_path):
    (tmp_path / "config.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(UserError, match="config.json cannot be loaded"):
        ClassifierJudge(tmp_path)


def test_classifier_bad_batch_size(classifiers):
    with pytest.raises(UserError, match="batch_size"):
        ClassifierJudge(classifiers[0], batch_size=0)


def test_classifier_config_is_plain_json(classifiers):
    with open(f"{classifiers[0]}/config.json", encoding="utf-8") as f:
        assert json.load(f)["architectures"] == ["BertForSequenceClassification"]


def test_the_evaluation_puts_the_classifier_beside_the_evaluated_model(classifiers, tiny_llama, tiny_llama_dir,
                                                                      tmp_path, monkeypatch):
    """Each torchrun rank judges on its own GPU: the judge goes where the evaluated model is."""
    from easyedit_detox.data.safeedit import SafeEditDataset
    from easyedit_detox.evaluation.runner import Evaluation, EvaluationSettings
    from easyedit_detox.toy import sample_path
    from test_runner import tiny_hparams

    moved = []
    real = ClassifierJudge.to
    monkeypatch.setattr(ClassifierJudge, "to", lambda self, device: (moved.append(str(device)), real(self, device))[1])
    model, tok = tiny_llama
    Evaluation(model, tok, tiny_hparams(tiny_llama_dir), SafeEditDataset(sample_path(), limit=1), str(tmp_path / "o"),
               judge=f"classifier:{classifiers[0]}", settings=EvaluationSettings(progress=False, general_cases=0))
    assert moved == [str(next(model.parameters()).device)]


# -- what a classifier's labels mean ------------------------------------------------------------

def labelled_classifier(folder, tokenizer, winner, id2label):
    path = save_classifier(folder, tokenizer, winner)
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    config["id2label"] = {str(i): name for i, name in id2label.items()}
    config["label2id"] = {name: i for i, name in id2label.items()}
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def test_named_labels_decide_which_output_is_unsafe(classifiers, tmp_path):
    tok = classifiers["tokenizer"]
    # Output 0 always wins; its name decides whether that is unsafe.
    inverted = labelled_classifier(tmp_path / "inverted", tok, 0, {0: "unsafe", 1: "safe"})
    assert get_judge(f"classifier:{inverted}")(["a reply"]) == [1.0]
    usual = labelled_classifier(tmp_path / "usual", tok, 0, {0: "SAFE", 1: "Unsafe"})
    assert get_judge(f"classifier:{usual}")(["a reply"]) == [0.0]
    assert get_judge(f"classifier:{classifiers[1]}")(["a reply"]) == [1.0]  # LABEL_0/LABEL_1: SafeEdit's, 1 unsafe
    odd = labelled_classifier(tmp_path / "odd", tok, 0, {0: "POSITIVE", 1: "NEGATIVE"})
    with pytest.raises(UserError, match=r"\['positive', 'negative'\] are not known as unsafe/safe; .*@unsafe=1"):
        get_judge(f"classifier:{odd}")
    assert get_judge(f"classifier:{odd}@unsafe=0")(["a reply"]) == [1.0]  # stated: output 0 is unsafe
    refusal = labelled_classifier(tmp_path / "refusal", tok, 0, {0: "refusal", 1: "compliance"})
    with pytest.raises(UserError, match="a refusal classifier's, not a safety classifier's"):
        get_judge(f"classifier:{refusal}")


def test_refusal_detector_reads_refusal_labels_and_refuses_a_safety_classifier(classifiers, tmp_path):
    from easyedit_detox.evaluation.probes.overrefusal import refusal_detector

    tok = classifiers["tokenizer"]
    refusal = labelled_classifier(tmp_path / "refusal", tok, 1, {0: "compliance", 1: "refusal"})
    assert refusal_detector(f"classifier:{refusal}")(["I cannot help."]) == [1.0]
    with pytest.raises(UserError, match="measures unsafety, not refusal"):
        refusal_detector(f"classifier:{classifiers[1]}")  # SafeEdit-style LABEL_0/LABEL_1
    assert refusal_detector(f"classifier:{classifiers[1]}@refusal=1")(["x"]) == [1.0]
    safety = labelled_classifier(tmp_path / "safety", tok, 1, {0: "safe", 1: "unsafe"})
    with pytest.raises(UserError, match="a safety classifier's, not a refusal classifier's"):
        refusal_detector(f"classifier:{safety}")
    with pytest.raises(UserError, match="needs @refusal=N, not @unsafe=N"):
        refusal_detector(f"classifier:{safety}@unsafe=1")
