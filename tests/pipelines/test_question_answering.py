"""question-answering: outputs equal to transformers v4's pipeline (v5 removed it) on the same tiny checkpoints,
plus an independent brute-force check of the span scoring and hugkit's errors."""

import json
import shutil

import pytest

from hugkit import pipeline
from tests.assets import GPT2_FILES, MINILM, require
from tests.pipelines.conftest import TINY
from tests.pipelines.reference_v4 import run_v4

CONTEXT = "My name is Wolfgang and I live in Berlin, the capital of Germany. I work as a baker since 1998."
QUESTION = "Where do I live?"
LONG_CONTEXT = " ".join(
    f"Paragraph {i}: the river Spree flows through Berlin while Sarah walks her dog named Rex near the old bridge."
    for i in range(8)
)
DICTS = [
    {"question": QUESTION, "context": CONTEXT},
    {"question": "Who walks the dog?", "context": LONG_CONTEXT[:300]},
    {"question": "What is a very long question about nothing much at all, really?", "context": "Berlin is big."},
]
LONG = dict(max_seq_len=48, doc_stride=16)

# (name, positional args, keyword arguments): each runs in hugkit and in transformers v4.
CASES = [
    ("keywords", [], dict(question=QUESTION, context=CONTEXT)),
    ("positional pair", [QUESTION, CONTEXT], {}),
    ("one dict", [DICTS[0]], {}),
    ("list of one dict", [[DICTS[0]]], {}),
    ("list of dicts", [DICTS], {}),
    ("list of dicts, batched", [DICTS], dict(batch_size=2)),
    ("questions for one context", [], dict(question=[QUESTION, "What is my name?"], context=CONTEXT)),
    ("question and context lists", [], dict(question=[QUESTION, "Who?"], context=[CONTEXT, DICTS[1]["context"]])),
    ("top_k", [], dict(question=QUESTION, context=CONTEXT, top_k=4)),
    ("short answers", [], dict(question=QUESTION, context=CONTEXT, top_k=3, max_answer_len=2)),
    ("impossible answer allowed", [], dict(question=QUESTION, context=CONTEXT, top_k=30, handle_impossible_answer=True)),
    ("impossible answer ranked", [DICTS[2]], dict(top_k=11, handle_impossible_answer=True)),
    ("token spans", [], dict(question=QUESTION, context=CONTEXT, top_k=3, align_to_words=False)),
    ("long context in windows", [], dict(question="Who walks the dog?", context=LONG_CONTEXT, top_k=3, **LONG)),
    ("windows, default stride", [], dict(question="Where?", context=LONG_CONTEXT, top_k=2, max_seq_len=40)),
    ("windows, token spans", [], dict(question="Who?", context=LONG_CONTEXT, top_k=5, align_to_words=False, **LONG)),
    ("windows and impossible", [], dict(question="Who?", context=LONG_CONTEXT, top_k=40, handle_impossible_answer=True, **LONG)),
    ("context shorter than question", [DICTS[2]], dict(top_k=2)),
]


def _build(kind, folder):
    import torch
    import transformers

    torch.manual_seed(0)
    if kind == "bert":
        model = transformers.BertForQuestionAnswering(transformers.BertConfig(vocab_size=30522, **TINY))
    elif kind == "distilbert":
        config = transformers.DistilBertConfig(
            vocab_size=30522, dim=32, n_layers=2, n_heads=4, hidden_dim=37, max_position_embeddings=128
        )
        model = transformers.DistilBertForQuestionAnswering(config)
    else:
        config = transformers.RobertaConfig(vocab_size=50265, **{**TINY, "max_position_embeddings": 130})
        model = transformers.RobertaForQuestionAnswering(config)
    with torch.no_grad():  # peaked start/end scores, so the order of answers means something
        model.qa_outputs.weight.mul_(40)
    model.eval().save_pretrained(folder)
    if kind == "roberta":
        shutil.copy(require(GPT2_FILES) / "encoder.json", folder / "vocab.json")
        shutil.copy(require(GPT2_FILES) / "vocab.bpe", folder / "merges.txt")
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"tokenizer_class": "RobertaTokenizer", "model_max_length": 128})
        )
    else:
        for name in ("tokenizer.json", "special_tokens_map.json", "vocab.txt"):
            shutil.copy(require(MINILM) / name, folder / name)
        config = json.loads((require(MINILM) / "tokenizer_config.json").read_text())
        if kind == "distilbert":  # as real DistilBERT checkpoints: no token_type_ids
            config["tokenizer_class"] = "DistilBertTokenizer"
        (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return str(folder)


KINDS = ["bert", "distilbert", "roberta"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return {kind: _build(kind, tmp_path_factory.mktemp(f"tiny-{kind}-qa")) for kind in KINDS}


@pytest.fixture(scope="module")
def v4_answers(checkpoints):
    """transformers v4's output for every (checkpoint, case), from one subprocess."""
    calls = [
        {"folder": checkpoints[kind], "args": args, "kwargs": kwargs}
        for kind in KINDS
        for _, args, kwargs in CASES
    ]
    outputs = iter(run_v4(calls))
    return {(kind, name): next(outputs) for kind in KINDS for name, _, _ in CASES}


@pytest.fixture(scope="module")
def ours(checkpoints):
    return {kind: pipeline("question-answering", model=folder) for kind, folder in checkpoints.items()}


def assert_same(ours, theirs, tol=1e-4):
    """Same nesting, same answers and offsets in the same order, scores within tol."""
    assert type(ours) is type(theirs), (ours, theirs)
    if isinstance(theirs, list):
        assert len(ours) == len(theirs), (ours, theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, tol)
    else:
        assert set(ours) == {"score", "start", "end", "answer"} == set(theirs)
        assert (ours["answer"], ours["start"], ours["end"]) == (theirs["answer"], theirs["start"], theirs["end"]), (ours, theirs)
        assert ours["score"] == pytest.approx(theirs["score"], abs=tol)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name, args, kwargs", CASES, ids=[case[0] for case in CASES])
def test_outputs_match_transformers_v4(ours, v4_answers, kind, name, args, kwargs):
    expected = v4_answers[(kind, name)]
    assert "ok" in expected, expected
    assert_same(ours[kind](*args, **kwargs), expected["ok"])


def test_cases_exercise_what_they_claim(ours, v4_answers):
    """Guards against vacuous comparisons: varied answers, several windows, the empty answer, distinct scores."""
    top = v4_answers[("bert", "top_k")]["ok"]
    assert len({answer["answer"] for answer in top}) == 4 and top[0]["score"] > 1.5 * top[-1]["score"]
    assert any(answer["answer"] == "" for answer in v4_answers[("bert", "impossible answer ranked")]["ok"])
    windows = ours["bert"].preprocess([{"question": "Who walks the dog?", "context": LONG_CONTEXT}], dict(LONG))
    assert len(windows) >= 4
    assert max(a["start"] for a in v4_answers[("bert", "windows, token spans")]["ok"]) > 0


def test_brute_force_span_scores(checkpoints):
    """Independent of transformers: enumerate every span of context tokens and score it from the model's logits."""
    import torch

    from hugkit import AutoModelForQuestionAnswering, AutoTokenizer

    model = AutoModelForQuestionAnswering.from_pretrained(checkpoints["bert"])
    tokenizer = AutoTokenizer.from_pretrained(checkpoints["bert"])
    encoded = tokenizer(QUESTION, CONTEXT, return_tensors="pt", return_offsets_mapping=True)
    offsets = encoded.pop("offset_mapping")[0].tolist()
    with torch.inference_mode():
        out = model(**encoded)
    in_context = [s == 1 for s in encoded.sequence_ids(0)]
    allowed = torch.tensor([True] + in_context[1:])  # [CLS] takes part in the softmax
    start = out.start_logits[0].masked_fill(~allowed, float("-inf")).softmax(-1)
    end = out.end_logits[0].masked_fill(~allowed, float("-inf")).softmax(-1)
    spans = [
        (float(start[i] * end[j]), i, j)
        for i in range(len(in_context)) if in_context[i]
        for j in range(i, min(i + 3, len(in_context))) if in_context[j]
    ]
    spans.sort(reverse=True)
    answers = pipeline("question-answering", model=checkpoints["bert"])(
        question=QUESTION, context=CONTEXT, top_k=3, max_answer_len=3, align_to_words=False
    )
    for (score, i, j), answer in zip(spans, answers):
        assert answer["score"] == pytest.approx(score, abs=1e-5)
        assert (answer["start"], answer["end"]) == (offsets[i][0], offsets[j][1])
    assert len(answers) == 3


def test_max_question_len_truncates_the_question(ours):
    qa = ours["bert"]
    long_question = "Where " + "exactly and precisely " * 60 + "do I live?"
    with pytest.raises(ValueError, match="leaves no room for the context.*max_question_len="):
        qa(question=long_question, context=CONTEXT)
    truncated = qa(question=long_question, context=CONTEXT, max_question_len=5)
    assert truncated == qa(question="Where exactly and precisely exactly", context=CONTEXT)


def test_long_question_gets_a_smaller_default_stride(ours):
    question = "Who " + "really " * 20 + "walks the dog?"
    answer = ours["bert"](question=question, context=LONG_CONTEXT, max_seq_len=40)
    assert LONG_CONTEXT[answer["start"] : answer["end"]] == answer["answer"]


def test_lazy_iteration_keeps_order(ours):
    qa = ours["distilbert"]
    expected = qa(DICTS)
    assert_same(list(qa(iter(DICTS), batch_size=2)), expected, tol=1e-6)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (dict(question="", context=CONTEXT), ValueError, "The question is empty"),
        (dict(question=QUESTION, context="   "), ValueError, "The context is empty"),
        (dict(question=QUESTION, context="\u200b"), ValueError, "has no tokens to answer from"),
        (dict(question=QUESTION, context=3), ValueError, "context= a string or a list"),
        (dict(question=[QUESTION, QUESTION], context=[CONTEXT]), ValueError, "2 questions but 1 contexts"),
        (dict(question=QUESTION), ValueError, "Both question= and context= are needed"),
        (dict(question=QUESTION, context=CONTEXT, top_k=0), ValueError, "top_k must be an integer >= 1"),
        (dict(question=QUESTION, context=CONTEXT, max_answer_len=0), ValueError, "max_answer_len must be an integer >= 1"),
        (dict(question=QUESTION, context=CONTEXT, max_seq_len=1000), ValueError, r"larger than this model's input limit \(128\)"),
        (dict(question=QUESTION, context=LONG_CONTEXT, max_seq_len=40, doc_stride=60), ValueError, "doc_stride .* larger than max_seq_len"),
        (dict(question=QUESTION, context=LONG_CONTEXT, max_seq_len=40, doc_stride=33), ValueError, r"doc_stride \(33\) must be smaller than the 3\d context tokens"),
        (dict(question=QUESTION, context=CONTEXT, handle_impossible_answer="yes"), TypeError, "must be True or False"),
        (dict(question=QUESTION, context=CONTEXT, colour="red"), TypeError, "unexpected keyword arguments"),
    ],
)
def test_bad_inputs_get_clear_errors(ours, call, error, message):
    with pytest.raises(error, match=message):
        ours["bert"](**call)


def test_bad_positional_inputs(ours):
    qa = ours["bert"]
    with pytest.raises(ValueError, match="got keys \\['context', 'q'\\]"):
        qa({"q": QUESTION, "context": CONTEXT})
    with pytest.raises(ValueError, match="Each input must be a dict"):
        qa(["just a string"])
    with pytest.raises(ValueError, match="Nothing to answer"):
        qa()
    with pytest.raises(TypeError, match="either as keywords or positionally"):
        qa(DICTS[0], question=QUESTION, context=CONTEXT)
