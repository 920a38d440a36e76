"""Decoding, vocabulary access, added and special tokens: same results as transformers."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenization.helpers import CORPUS, assert_same_call


def test_byte_level_decode_round_trips_exactly(pair_of_tokenizers):
    _, ours, _ = pair_of_tokenizers("gpt2_vocab_merges")
    for text in CORPUS:
        assert ours.decode(ours.encode(text)) == text


def test_wordpiece_decode_round_trip_is_lowercased_text(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    ids = ours.encode("Hello, World! It's naïve.")
    assert ours.decode(ids, skip_special_tokens=True) == "hello, world! it ' s naive."
    assert ours.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True) == "hello, world! it's naive."
    for clean in (True, False):
        assert ours.decode(ids, clean_up_tokenization_spaces=clean) == reference.decode(
            ids, clean_up_tokenization_spaces=clean)


def test_decode_accepts_tensors_arrays_ints_and_batches(pair_of_tokenizers):
    import torch

    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    batch = ours(["Hello world", "a longer second sentence"], padding=True, return_tensors="pt")["input_ids"]
    expected = reference.batch_decode(batch, skip_special_tokens=True)
    assert ours.batch_decode(batch, skip_special_tokens=True) == expected == ["hello world", "a longer second sentence"]
    assert ours.decode(batch, skip_special_tokens=True) == expected  # decode takes a batch too
    assert ours.decode(batch[0]) == reference.decode(batch[0])
    assert ours.decode(np.asarray(batch[1])) == reference.decode(np.asarray(batch[1]))
    assert ours.decode(torch.tensor(7592)) == ours.decode(7592) == "hello"
    assert ours.batch_decode([]) == []
    assert ours.decode([]) == ""


def test_clean_up_is_skipped_for_bpe_like_transformers(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("gpt2_vocab_merges")
    ids = ours.encode("Hello , world . It 's")
    assert ours.decode(ids, clean_up_tokenization_spaces=True) == "Hello , world . It 's"
    assert ours.decode(ids, clean_up_tokenization_spaces=True) == reference.decode(ids, clean_up_tokenization_spaces=True)


def test_vocabulary_lookups(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    assert ours.convert_tokens_to_ids("hello") == 7592
    assert ours.convert_tokens_to_ids(["hello", "not-a-token-xyz"]) == [7592, ours.unk_token_id]
    assert ours.convert_tokens_to_ids("not-a-token-xyz") == reference.convert_tokens_to_ids("not-a-token-xyz") == 100
    assert ours.convert_ids_to_tokens(7592) == "hello"
    assert ours.convert_tokens_to_string(["hello", "##s", "world"]) == reference.convert_tokens_to_string(
        ["hello", "##s", "world"])
    assert ours.get_vocab()["[CLS]"] == 101 and len(ours.get_vocab()) == len(ours) == 30522
    assert ours.get_special_tokens_mask([101, 7592, 102], already_has_special_tokens=True) == [1, 0, 1]
    assert ours.max_len_single_sentence == reference.max_len_single_sentence == 510
    assert ours.max_len_sentences_pair == reference.max_len_sentences_pair == 509


@pytest.mark.parametrize("case", ["minilm_vocab_txt", "roberta_vocab_merges", "t5_unigram", "llama_bpe_byte_fallback"])
def test_add_tokens_and_special_tokens_like_transformers(case, format_folders, reference_loader, hugkit_loader):
    folder, _ = format_folders(case)
    # Fresh objects: adding tokens changes them.
    reference = reference_loader(folder, model_max_length=77)
    ours = hugkit_loader(folder, model_max_length=77)
    assert ours.model_max_length == 77
    before = len(ours)
    assert ours.add_tokens(["newword", "another new"]) == reference.add_tokens(["newword", "another new"]) == 2
    assert ours.add_tokens(["newword"]) == reference.add_tokens(["newword"]) == 0
    assert len(ours) == len(reference) == before + 2
    added = ours.add_special_tokens({"pad_token": "<PADX>", "extra_special_tokens": ["<ctrl1>", "<ctrl2>"]})
    assert added == reference.add_special_tokens({"pad_token": "<PADX>", "extra_special_tokens": ["<ctrl1>", "<ctrl2>"]})
    assert ours.pad_token == "<PADX>" and ours.pad_token_id == reference.pad_token_id == before + 2
    assert ours.all_special_tokens == reference.all_special_tokens
    assert ours.all_special_ids == reference.all_special_ids
    text = "a newword<ctrl1>and another new thing <PADX>"
    assert_same_call(reference, ours, [text, "x"], padding=True, return_special_tokens_mask=True,
                     return_offsets_mapping=True)
    ids = reference(text)["input_ids"]
    assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
    assert ours.decode(ids) == reference.decode(ids)
    with pytest.raises(ValueError, match="not a special token name"):
        ours.add_special_tokens({"padding_token": "x"})


def test_setting_a_pad_token_enables_padding(format_folders, reference_loader, hugkit_loader):
    folder, _ = format_folders("gpt2_vocab_merges")
    reference, ours = reference_loader(folder, model_max_length=1000), hugkit_loader(folder, model_max_length=1000)
    with pytest.raises(ValueError, match="padding token"):
        ours(["a", "b c"], padding=True)
    reference.pad_token = ours.pad_token = ours.eos_token
    assert ours.pad_token_id == 50256
    assert_same_call(reference, ours, ["a", "b c d"], padding=True, return_tensors="np")
    ours.pad_token_id = 13
    assert ours.pad_token == "."


def test_bos_eos_flags_rebuild_the_template(format_folders, reference_loader, hugkit_loader):
    folder, _ = format_folders("llama_bpe_byte_fallback")
    reference, ours = reference_loader(folder, model_max_length=78), hugkit_loader(folder, model_max_length=78)
    assert ours.add_bos_token and not ours.add_eos_token
    assert ours("hi")["input_ids"][0] == ours.bos_token_id
    for bos, eos in ((False, True), (True, True), (False, False)):
        reference.add_bos_token = ours.add_bos_token = bos
        reference.add_eos_token = ours.add_eos_token = eos
        assert_same_call(reference, ours, "hello there", "pair", return_token_type_ids=True)
        assert ours.num_special_tokens_to_add() == reference.num_special_tokens_to_add() == int(bos) + int(eos)
    overridden = hugkit_loader(folder, add_bos_token=False, add_eos_token=True)
    assert_same_call(reference_loader(folder, add_bos_token=False, add_eos_token=True), overridden, "hello")
    assert overridden("hello")["input_ids"][-1] == overridden.eos_token_id


def test_repr_and_special_token_attributes(pair_of_tokenizers):
    _, ours, _ = pair_of_tokenizers("roberta_vocab_merges")
    assert "RobertaTokenizer" in repr(ours) and "vocab_size=500" in repr(ours)
    assert (ours.cls_token, ours.sep_token, ours.mask_token, ours.bos_token, ours.eos_token) == (
        "<s>", "</s>", "<mask>", "<s>", "</s>")
    assert (ours.cls_token_id, ours.pad_token_id, ours.sep_token_id, ours.unk_token_id, ours.mask_token_id) == (
        0, 1, 2, 3, 4)
    assert ours.is_fast and ours.backend_tokenizer.get_vocab_size() == 500
    with pytest.raises(TypeError, match="must be a str"):
        ours.pad_token = 5
