"""Every tokenizer format gives exactly transformers' ids, masks, offsets and text, loaded from the same folder."""

from __future__ import annotations

import numpy as np
import pytest

from tests.tokenization.conftest import FORMAT_CASES
from tests.tokenization.helpers import CORPUS, PAIRS, as_dict, assert_same_call, assert_same_metadata

ALL_OUTPUTS = dict(
    return_token_type_ids=True,
    return_attention_mask=True,
    return_special_tokens_mask=True,
    return_offsets_mapping=True,
    return_length=True,
)


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_metadata_matches(case, pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers(case)
    assert_same_metadata(reference, ours)


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_single_texts_and_pairs_match(case, pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers(case)
    for text in CORPUS:
        single = assert_same_call(reference, ours, text, **ALL_OUTPUTS)
        assert single["input_ids"] == reference(text)["input_ids"]
        for pair in PAIRS[:2]:
            assert_same_call(reference, ours, text, pair, **ALL_OUTPUTS)
        # Default outputs (which keys appear) follow the class's model_input_names.
        assert_same_call(reference, ours, text)
        assert ours.tokenize(text) == reference.tokenize(text)
        assert ours.encode(text, add_special_tokens=False) == reference.encode(text, add_special_tokens=False)


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_batches_match_as_lists_and_tensors(case, pair_of_tokenizers, reference_loader, hugkit_loader):
    reference, ours, folder = pair_of_tokenizers(case)
    pairs = [PAIRS[index % len(PAIRS)] for index in range(len(CORPUS))]
    assert_same_call(reference, ours, CORPUS, **ALL_OUTPUTS)  # unpadded: ragged lists
    if reference.pad_token is None:
        if case == "llama3_tokenizer_json":
            return  # reloading 128k merges twice costs seconds; padding is covered by the other cases
        # No pad token in the checkpoint: load both with one, as users do (pad_token=eos_token).
        pad = reference.eos_token or reference.unk_token
        reference, ours = reference_loader(folder, pad_token=pad), hugkit_loader(folder, pad_token=pad)
    assert_same_call(reference, ours, CORPUS, padding=True, **ALL_OUTPUTS)
    assert_same_call(reference, ours, CORPUS, pairs, padding=True, truncation=True, max_length=32, **ALL_OUTPUTS)
    for tensors in ("pt", "np"):
        output = assert_same_call(reference, ours, CORPUS, padding=True, truncation=True, max_length=40,
                                  return_tensors=tensors, return_special_tokens_mask=True)
        assert np.asarray(output["input_ids"]).shape[0] == len(CORPUS)


@pytest.mark.parametrize("case", FORMAT_CASES)
def test_decoding_matches(case, pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers(case)
    batch = []
    for text in CORPUS:
        ids = reference(text, PAIRS[0])["input_ids"]
        batch.append(ids)
        assert ours.decode(ids) == reference.decode(ids)
        assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)
        assert ours.convert_ids_to_tokens(ids) == reference.convert_ids_to_tokens(ids)
        assert ours.convert_ids_to_tokens(ids, skip_special_tokens=True) == reference.convert_ids_to_tokens(
            ids, skip_special_tokens=True)
    assert ours.batch_decode(batch, skip_special_tokens=True) == reference.batch_decode(batch, skip_special_tokens=True)


def test_every_case_exercises_a_different_source(format_folders):
    """The cases above cover each source format the loader converts, plus tokenizer.json."""
    kinds = set()
    for case in FORMAT_CASES:
        try:
            folder, _ = format_folders(case)
        except pytest.skip.Exception:
            continue
        names = {path.name for path in folder.iterdir()}
        if "tokenizer.json" in names:
            kinds.add("tokenizer.json")
        elif "vocab.txt" in names:
            kinds.add("wordpiece")
        elif "merges.txt" in names:
            kinds.add("byte-level bpe")
        else:
            kinds.add("sentencepiece")
    assert {"wordpiece", "byte-level bpe", "sentencepiece"} <= kinds


def test_converted_sentencepiece_matches_the_sentencepiece_library(spm_models, format_folders, hugkit_loader):
    """Without a known class, a SentencePiece model encodes exactly like SentencePieceProcessor.encode."""
    import sentencepiece
    for case, model in (("generic_unigram", "unigram"), ("generic_bpe", "bpe")):
        processor = sentencepiece.SentencePieceProcessor(model_file=str(spm_models[model]))
        ours = hugkit_loader(format_folders(case)[0])
        # Control pieces (<s>, </s>, <unk>) written in the text are special tokens for transformers and hugkit,
        # plain text for SentencePiece: leave them out here.
        texts = [text for text in CORPUS if "<s>" not in text] + ["▁already escaped", "<sep2> user piece<sep2>x"]
        for text in texts:
            assert ours.encode(text) == processor.encode(text), (case, text)


def test_outputs_are_plain_python_for_single_inputs(pair_of_tokenizers):
    reference, ours, _ = pair_of_tokenizers("minilm_tokenizer_json")
    output = ours("Hello world", return_offsets_mapping=True, return_length=True)
    assert output["input_ids"] == [101, 7592, 2088, 102]
    assert output["offset_mapping"] == [(0, 0), (0, 5), (6, 11), (0, 0)]
    assert output["length"] == [4]  # transformers keeps length as a one-item list
    assert as_dict(output) == as_dict(reference("Hello world", return_offsets_mapping=True, return_length=True))
