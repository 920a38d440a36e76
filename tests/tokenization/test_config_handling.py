"""Which config says what: tokenizer_config.json, legacy special_tokens_map.json / added_tokens.json, config.json's
model_type, and caller overrides applied to a tokenizer.json."""

from __future__ import annotations

import pytest

from hugkit.tokenization import AutoTokenizer
from tests.tokenization.helpers import CORPUS, PAIRS, as_dict, assert_same_call, assert_same_metadata, make_folder


@pytest.fixture(scope="module")
def legacy_folder(tmp_path_factory, format_folders):
    vocab = format_folders("minilm_vocab_txt")[0] / "vocab.txt"
    return make_folder(
        tmp_path_factory.mktemp("legacy") / "bert",
        {"vocab.txt": vocab},
        {"tokenizer_class": "BertTokenizer", "padding_side": "left", "truncation_side": "left",
         "clean_up_tokenization_spaces": True, "model_max_length": int(1e30), "do_lower_case": True},
        {
            "special_tokens_map.json": {
                "additional_special_tokens": ["<ent>"],
                "mask_token": {"content": "[MASK]", "lstrip": True, "rstrip": False, "normalized": False,
                               "single_word": False},
                "unk_token": "[UNK]", "pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]",
            },
            "added_tokens.json": {"<ent>": 30522, "newword": 30523},
        },
    )


def test_legacy_config_files_match_transformers(legacy_folder, reference_loader, hugkit_loader):
    reference, ours = reference_loader(legacy_folder), hugkit_loader(legacy_folder)
    assert_same_metadata(reference, ours)
    assert ours.padding_side == ours.truncation_side == "left" and ours.clean_up_tokenization_spaces
    text = "x <ent> newword [MASK] y, isn't it ."
    for options in (dict(), dict(truncation=True, max_length=6), dict(return_offsets_mapping=True)):
        assert_same_call(reference, ours, [text, "short"], padding=True, **options)
    ids = reference(text)["input_ids"]
    assert ours.decode(ids) == reference.decode(ids) == "[CLS] x <ent> newword [MASK] y, isn't it. [SEP]"
    assert ours.decode(ids, skip_special_tokens=True) == reference.decode(ids, skip_special_tokens=True)


def test_model_type_picks_the_class_when_the_config_names_none(tmp_path, format_folders, reference_loader):
    vocab = format_folders("minilm_vocab_txt")[0] / "vocab.txt"
    bert = make_folder(tmp_path / "bert", {"vocab.txt": vocab}, {"model_max_length": 512},
                       {"config.json": {"model_type": "bert"}})
    reference, ours = reference_loader(bert), AutoTokenizer.from_pretrained(bert)
    assert ours.tokenizer_class == "BertTokenizer"
    for text in CORPUS[:6]:
        assert_same_call(reference, ours, text, PAIRS[0])
    # Deliberate deviation: transformers 5 maps model_type "distilbert" to BertTokenizer (token_type_ids included);
    # hugkit uses DistilBertTokenizer, whose model takes no token_type_ids. The ids are the same.
    distil = make_folder(tmp_path / "distil", {"vocab.txt": vocab}, {"model_max_length": 512},
                         {"config.json": {"model_type": "distilbert"}})
    reference, ours = reference_loader(distil), AutoTokenizer.from_pretrained(distil)
    assert list(ours("hello", "there")) == ["input_ids", "attention_mask"]
    assert ours("hello", "there")["input_ids"] == reference("hello", "there")["input_ids"]
    # tokenizer_type= names the model type directly and wins over the folder's configs.
    forced = AutoTokenizer.from_pretrained(bert, tokenizer_type="distilbert")
    assert forced.tokenizer_class == "DistilBertTokenizer" and "token_type_ids" not in forced("x")
    with pytest.raises(ValueError, match="tokenizer_type 'nope'"):
        AutoTokenizer.from_pretrained(bert, tokenizer_type="nope")


def test_explicit_settings_patch_a_tokenizer_json(tmp_path, format_folders, reference_loader, hugkit_loader):
    roberta_json = tmp_path / "roberta_json"
    hugkit_loader(format_folders("roberta_vocab_merges")[0]).save_pretrained(roberta_json)
    for options in (dict(add_prefix_space=True), dict(add_prefix_space=True, trim_offsets=False)):
        reference = reference_loader(roberta_json, **options)
        ours = AutoTokenizer.from_pretrained(roberta_json, **options)
        for text in ("Hello world", " leading", "a  b <mask> c"):
            assert_same_call(reference, ours, text, "pair", return_offsets_mapping=True)
        assert_same_call(reference, ours, ["Hello", "world"], is_split_into_words=True, return_offsets_mapping=True)
    minilm = format_folders("minilm_tokenizer_json")[0]
    for options in (dict(do_lower_case=False), dict(strip_accents=True)):
        reference, ours = reference_loader(minilm, **options), AutoTokenizer.from_pretrained(minilm, **options)
        for text in ("Hello Wörld", "naïve CAFÉ"):
            assert_same_call(reference, ours, text)
    assert AutoTokenizer.from_pretrained(minilm, do_lower_case=False)("Hello")["input_ids"] == [101, 100, 102]


def test_overrides_win_over_the_config(format_folders, hugkit_loader):
    folder = format_folders("minilm_tokenizer_json")[0]
    ours = hugkit_loader(folder, model_max_length=16, padding_side="left", pad_token="[MASK]")
    assert (ours.model_max_length, ours.padding_side, ours.pad_token_id) == (16, "left", 103)
    output = ours(["a", "b c d"], padding=True, truncation=True)
    assert output["input_ids"][0] == [103, 103, 101, 1037, 102]
    assert len(ours("word " * 50, truncation=True)["input_ids"]) == 16
    assert as_dict(ours("x")) == {"input_ids": [101, 1060, 102], "token_type_ids": [0, 0, 0], "attention_mask": [1, 1, 1]}
