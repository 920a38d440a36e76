"""Call options (padding, truncation, overflow, tensors, pre-split words, pairs, pad()) behave like transformers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenization.helpers import CORPUS, PAIRS, as_dict, assert_same_call

LONG = CORPUS[12]
BATCH = ["Hello world", LONG, "", "a b", CORPUS[6], CORPUS[7]]
BATCH_PAIRS = [PAIRS[index % len(PAIRS)] for index in range(len(BATCH))]


@pytest.fixture(scope="module", params=["minilm_tokenizer_json", "roberta_vocab_merges", "llama_bpe_byte_fallback"])
def tokenizers_pair(request, pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers(request.param)
    return reference, ours


PADDING_AND_TRUNCATION = [
    dict(padding=True),
    dict(padding="longest"),
    dict(padding=False),
    dict(padding="do_not_pad"),
    dict(padding="max_length", max_length=48, truncation=True),
    dict(padding="max_length", max_length=24),  # longer rows stay longer, as in transformers
    dict(padding=True, pad_to_multiple_of=8),
    dict(padding="max_length", max_length=24, pad_to_multiple_of=8, truncation=True),
    dict(padding=True, padding_side="left"),
    dict(padding=True, truncation=True, max_length=10, padding_side="left"),
    dict(truncation=True, max_length=12),
    dict(max_length=12),  # max_length alone turns truncation on
    dict(truncation="longest_first", max_length=14),
    dict(truncation="do_not_truncate", max_length=14),
    dict(truncation=False, padding=True),
    dict(truncation=True),  # model_max_length (or no limit) decides
    dict(padding="max_length"),  # model_max_length (or no padding when unlimited)
    dict(padding=True, return_attention_mask=False, return_token_type_ids=True),
    dict(padding=True, return_length=True, return_special_tokens_mask=True, return_offsets_mapping=True),
]


@pytest.mark.parametrize("options", PADDING_AND_TRUNCATION, ids=lambda options: repr(options))
def test_padding_and_truncation_variants(tokenizers_pair, options):
    reference, ours = tokenizers_pair
    assert_same_call(reference, ours, BATCH, **options)
    assert_same_call(reference, ours, BATCH, BATCH_PAIRS, **options)
    assert_same_call(reference, ours, LONG, **options)


@pytest.mark.parametrize("strategy", ["only_first", "only_second", "longest_first"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_pair_truncation_strategies(pair_of_tokenizers, strategy, side):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    first, second = [LONG, "short one"], ["short pair", LONG]
    reference.truncation_side = ours.truncation_side = side
    try:
        for options in (dict(max_length=20), dict(max_length=20, padding=True, return_tensors="np")):
            output = assert_same_call(reference, ours, first, second, truncation=strategy, **options)
            if output:
                assert max(len(row) for row in output["input_ids"]) <= 20
    finally:
        reference.truncation_side = ours.truncation_side = "right"


@pytest.mark.parametrize("tensors", [None, "pt", "np"])
def test_overflowing_tokens_with_stride(tokenizers_pair, tensors):
    reference, ours = tokenizers_pair
    options = dict(truncation=True, max_length=16, stride=4, return_overflowing_tokens=True, padding=True,
                   return_offsets_mapping=True, return_tensors=tensors)
    output = assert_same_call(reference, ours, [LONG, "Hello world"], **options)
    assert len(output["overflow_to_sample_mapping"]) > 2
    assert_same_call(reference, ours, LONG, **options)
    assert_same_call(reference, ours, ["question?"], [LONG], truncation="only_second", max_length=24, stride=3,
                     return_overflowing_tokens=True)


def test_tensor_types_shapes_and_dtypes(tokenizers_pair):
    import torch

    reference, ours = tokenizers_pair
    pt = ours(BATCH, padding=True, truncation=True, max_length=32, return_tensors="pt")
    assert all(isinstance(value, torch.Tensor) and value.dtype == torch.int64 for value in pt.values())
    assert pt["input_ids"].shape == (len(BATCH), max(len(row) for row in reference(BATCH, truncation=True,
                                                                                    max_length=32)["input_ids"]))
    np_out = ours("Hello world", return_tensors="np")
    assert isinstance(np_out["input_ids"], np.ndarray) and np_out["input_ids"].shape[0] == 1
    single = ours.encode("Hello world", return_tensors="pt")
    assert single.shape[0] == 1 and single.tolist() == reference.encode("Hello world", return_tensors="pt").tolist()
    assert pt.to("cpu") is pt and pt.input_ids.device.type == "cpu"
    with pytest.raises(ValueError, match="different lengths"):
        ours(BATCH, return_tensors="pt")


def test_padding_side_attribute_and_argument(tokenizers_pair):
    reference, ours = tokenizers_pair
    original = (reference.padding_side, ours.padding_side)
    try:
        for side in ("left", "right"):
            reference.padding_side = ours.padding_side = side
            output = assert_same_call(reference, ours, BATCH, padding=True, return_tensors="np")
            mask = np.asarray(output["attention_mask"])
            assert (mask[:, 0 if side == "left" else -1] == 0).any()
            assert_same_call(reference, ours, BATCH, padding=True, padding_side="right" if side == "left" else "left")
    finally:
        reference.padding_side, ours.padding_side = original


def test_alignment_helpers_follow_padding(tokenizers_pair):
    reference, ours = tokenizers_pair
    for side in ("right", "left"):
        expected = reference(BATCH, BATCH_PAIRS, padding=True, padding_side=side)
        actual = ours(BATCH, BATCH_PAIRS, padding=True, padding_side=side)
        for index in range(len(BATCH)):
            assert actual.tokens(index) == expected.tokens(index)
            assert actual.word_ids(index) == expected.word_ids(index)
            assert actual.sequence_ids(index) == expected.sequence_ids(index)
            assert len(actual.word_ids(index)) == len(actual["input_ids"][index])
        assert actual.char_to_token(1, 3) == expected.char_to_token(1, 3)
        assert actual.token_to_word(1, 2) == expected.token_to_word(1, 2)
        assert actual.word_to_tokens(1, 1) == expected.word_to_tokens(1, 1)
        assert actual.n_sequences == expected.n_sequences == 2
    single = ours("Hello world")
    assert single.input_ids == single["input_ids"] and single.encodings[0].ids == single["input_ids"]


def test_split_into_words(pair_of_tokenizers):
    for case in ("minilm_tokenizer_json", "gpt2_vocab_merges", "xlm_roberta_unigram"):
        reference, ours, _ = pair_of_tokenizers(case)
        words = ["Hello", "wörld", "東京", "🙂"]
        assert_same_call(reference, ours, words, is_split_into_words=True, return_offsets_mapping=True)
        assert_same_call(reference, ours, [words, ["short"]], is_split_into_words=True)
        assert_same_call(reference, ours, [words, ["x"]], [["pair", "words"], ["y", "z"]], is_split_into_words=True,
                         return_token_type_ids=True)
        assert ours(words, is_split_into_words=True).word_ids() == reference(words, is_split_into_words=True).word_ids()


def test_batch_of_pairs_forms(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    as_lists = ours(["q1", "question two"], ["c1", "context two"], padding=True)
    as_tuples = ours([("q1", "c1"), ("question two", "context two")], padding=True)
    as_pairs = ours([["q1", "c1"], ["question two", "context two"]], padding=True)
    assert as_dict(as_lists) == as_dict(as_tuples) == as_dict(as_pairs)
    assert_same_call(reference, ours, [["q1", "c1"], ["question two", "context two"]], padding=True)
    assert as_lists["token_type_ids"][1] == [0, 0, 0, 0, 1, 1, 1]


def test_text_target_adds_labels(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    output = assert_same_call(reference, ours, ["source text"], text_target=["target text here"])
    assert output["labels"] == [[101, 4539, 3793, 2182, 102]]
    assert as_dict(ours(text_target="only a target")) == as_dict(reference(text_target="only a target"))


def test_truncation_true_uses_model_max_length(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    assert ours.model_max_length == 512
    text = "word " * 2000
    output = assert_same_call(reference, ours, text, truncation=True)
    assert len(output["input_ids"]) == 512
    assert_same_call(reference, ours, [text, "short"], padding="max_length", truncation=True, return_tensors="np")
    # Unlimited model_max_length (the 1e30 sentinel): truncation=True keeps everything, like transformers.
    reference_gpt2, ours_gpt2, _ = pair_of_tokenizers("roberta_prefix_space")
    assert ours_gpt2.model_max_length == int(1e30)
    output = assert_same_call(reference_gpt2, ours_gpt2, text, truncation=True)
    assert len(output["input_ids"]) > 1000


@pytest.mark.parametrize("case", ["minilm_tokenizer_json", "llama_bpe_byte_fallback"])
def test_pad_matches_transformers(pair_of_tokenizers, case):
    import torch

    reference, ours, _ = pair_of_tokenizers(case)
    features = [dict(reference(text)) for text in BATCH]
    for options in (dict(), dict(padding="max_length", max_length=140), dict(pad_to_multiple_of=8),
                    dict(padding_side="left"), dict(return_tensors="pt"), dict(return_tensors="np"),
                    dict(return_attention_mask=False)):
        expected = reference.pad([dict(feature) for feature in features], **options)
        actual = ours.pad([dict(feature) for feature in features], **options)
        assert as_dict(actual) == as_dict(expected), options
    batch_dict = {key: [feature[key] for feature in features] for key in features[0]}
    assert as_dict(ours.pad(dict(batch_dict))) == as_dict(reference.pad(dict(batch_dict)))
    assert as_dict(ours.pad(dict(features[1]), padding="max_length", max_length=200)) == as_dict(
        reference.pad(dict(features[1]), padding="max_length", max_length=200))
    tensors_in = {key: [torch.tensor(row) for row in value] for key, value in batch_dict.items()}
    padded = ours.pad(tensors_in)
    assert isinstance(padded["input_ids"], torch.Tensor)
    assert padded["input_ids"].tolist() == reference.pad(dict(batch_dict))["input_ids"]


def test_engine_state_is_not_sticky(pair_of_tokenizers):
    """A truncating call must not leak into the next call, even if the engine was changed behind our back."""
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    assert len(ours(LONG, truncation=True, max_length=8)["input_ids"]) == 8
    assert ours(LONG)["input_ids"] == reference(LONG)["input_ids"]
    ours.backend_tokenizer.enable_truncation(5)
    ours.backend_tokenizer.enable_padding(length=300)
    assert ours(LONG)["input_ids"] == reference(LONG)["input_ids"]
    assert ours.tokenize(LONG) == reference.tokenize(LONG)
