"""summarization / text2text-generation pipelines: the same outputs as transformers v4.57's pipelines (v5 removed
them) on the same tiny BART checkpoint, plus streaming and the errors v4 left to the model."""

from __future__ import annotations

import logging

import pytest

import hugkit
from tests.pipelines.reference_v4 import run_v4
from tests.pipelines.seq2seq_checkpoints import ARTICLE, tiny_bart

SHORT = "Markets rallied after the central bank kept rates unchanged."
OTHER = "The team won the championship after a dramatic final match."
# distilbart-cnn's kind of generation_config.json: beams, lengths, n-gram blocking, forced BOS/EOS.
CNN_SETTINGS = dict(num_beams=4, max_length=30, min_length=8, no_repeat_ngram_size=3, length_penalty=2.0, early_stopping=True)

CASES = {  # name -> (task, args, kwargs)
    "checkpoint defaults": ("summarization", [ARTICLE], {}),
    "greedy": ("summarization", [ARTICLE], {"num_beams": 1, "do_sample": False}),
    "lengths": ("summarization", [SHORT], {"max_length": 16, "min_length": 10}),
    "two beams returned": ("summarization", [ARTICLE], {"num_return_sequences": 2}),
    "tensors": ("summarization", [SHORT], {"return_tensors": True}),
    "list": ("summarization", [[SHORT, ARTICLE, OTHER]], {}),
    "list, two each": ("summarization", [[SHORT, OTHER]], {"num_return_sequences": 2, "num_beams": 3}),
    "beam options": ("summarization", [OTHER], {"num_beams": 3, "length_penalty": 0.5, "early_stopping": False,
                                                 "no_repeat_ngram_size": 2, "max_new_tokens": 12}),
    "too long, truncated": ("summarization", [ARTICLE + " " + ARTICLE], {"truncation": True}),
    "text2text": ("text2text-generation", [SHORT], {}),
    "text2text greedy": ("text2text-generation", [[SHORT, OTHER]], {"num_beams": 1, "max_new_tokens": 10}),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_bart(tmp_path_factory.mktemp("distilbart-tiny"), generation=CNN_SETTINGS)


@pytest.fixture(scope="module")
def v4_outputs(folder):
    calls = [{"task": task, "folder": str(folder), "args": args, "kwargs": kwargs} for task, args, kwargs in CASES.values()]
    return dict(zip(CASES, run_v4(calls)))


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("case", list(CASES))
def test_same_output_as_transformers_v4(folder, v4_outputs, case):
    task, args, kwargs = CASES[case]
    expected = v4_outputs[case]
    assert "ok" in expected, expected
    pipe = hugkit.pipeline(task, model=str(folder))
    assert _plain(pipe(*args, **kwargs)) == expected["ok"]


def test_settings_change_the_output(v4_outputs):
    """The cases are not all the same text: the comparison above would catch ignored settings."""
    texts = {repr(v4_outputs[name]["ok"]) for name in ("checkpoint defaults", "greedy", "two beams returned")}
    assert len(texts) == 3


def test_streaming_yields_the_greedy_text(folder):
    pipe = hugkit.pipeline("summarization", model=str(folder))
    full = pipe(ARTICLE, num_beams=1, do_sample=False)[0]["summary_text"]
    chunks = list(pipe(ARTICLE, num_beams=1, do_sample=False, stream=True))
    assert len(chunks) > 1
    assert "".join(chunks) == full


def test_length_warnings_as_v4(folder, caplog):
    pipe = hugkit.pipeline("summarization", model=str(folder))
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        pipe(SHORT, max_length=60, min_length=5, num_beams=1)
    assert "but your input_length is only" in caplog.text


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"stream": True}, "num_beams=4"),
        ({"num_return_sequences": 5}, "num_return_sequences"),
        ({"min_length": 40, "max_length": 20, "num_beams": 1}, "min_length"),
        ({"no_such_option": 1}, "no_such_option"),
    ],
)
def test_bad_calls_name_the_problem(folder, kwargs, message):
    pipe = hugkit.pipeline("summarization", model=str(folder))
    with pytest.raises((ValueError, TypeError)) as error:
        result = pipe(ARTICLE, **kwargs)
        list(result) if kwargs.get("stream") else None
    assert message in str(error.value)


@pytest.mark.parametrize("text", ["", "   ", 42, None])
def test_bad_inputs(folder, text):
    pipe = hugkit.pipeline("summarization", model=str(folder))
    with pytest.raises((ValueError, TypeError)):
        pipe(text)


def test_decoder_only_model_is_refused_with_a_route(tmp_path):
    from tests.generation.text_models import llama_with_gpt2_tokenizer

    with pytest.raises(ValueError, match="text-generation|encoder-decoder|seq2seq"):
        hugkit.pipeline("summarization", model=str(llama_with_gpt2_tokenizer()))


def test_translation_task_names(folder):
    with pytest.raises(KeyError, match="translation_XX_to_YY"):
        hugkit.pipeline("translation_english_french", model=str(folder))
    pipe = hugkit.pipeline("translation_en_to_fr", model=str(folder))
    assert "translation_text" in pipe(SHORT, num_beams=1, max_new_tokens=5)[0]
