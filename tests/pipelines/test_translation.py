"""translation pipelines on T5 (task prefixes from task_specific_params), Marian (opus-mt) and mBART-50 (src_lang /
tgt_lang): the same outputs as transformers v4.57's TranslationPipeline on the same tiny random checkpoints, and
clear errors where v4 silently produced garbage."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import hugkit
from tests.pipelines.reference_v4 import run_v4
from tests.pipelines.seq2seq_checkpoints import readable_by_v4
from tests.tokenization.test_seq2seq_tokenizers import _build, train_models

TEXTS = ["How many languages do you speak?", "My brother works in a bakery in Paris."]
T5_TASKS = {
    "translation_en_to_fr": {"prefix": "translate English to French: ", "max_length": 24, "num_beams": 2},
    "translation_en_to_de": {"prefix": "translate English to German: ", "max_length": 24, "num_beams": 2},
    "summarization": {"prefix": "summarize: ", "max_length": 20, "min_length": 4, "num_beams": 3,
                      "no_repeat_ngram_size": 2, "length_penalty": 2.0, "early_stopping": True},
}
SMALL = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
             encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=128)


def _randomize(model):
    torch.manual_seed(0)
    with torch.no_grad():  # strong random weights: different settings give different texts
        for param in model.parameters():
            param.normal_(0.0, 0.3)
    return model.eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    import transformers

    root = tmp_path_factory.mktemp("translation")
    (root / "spm").mkdir()
    models = train_models(root / "spm")
    built: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in built:
            built[name] = _build(name, root / "tokenizers", models, get)
        return built[name]

    out = {}
    t5_tokenizer = transformers.AutoTokenizer.from_pretrained(get("t5_saved"))
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(
        vocab_size=len(t5_tokenizer), d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
        task_specific_params=T5_TASKS,
    ))
    out["t5"] = _save(_randomize(t5), t5_tokenizer, root / "t5")

    marian_folder = get("marian_shared")
    marian_tokenizer = transformers.AutoTokenizer.from_pretrained(marian_folder)
    marian = transformers.MarianMTModel(transformers.MarianConfig(
        vocab_size=len(marian_tokenizer), decoder_start_token_id=marian_tokenizer.pad_token_id,
        pad_token_id=marian_tokenizer.pad_token_id, eos_token_id=marian_tokenizer.eos_token_id,
        forced_eos_token_id=marian_tokenizer.eos_token_id, **SMALL,
    ))
    out["marian"] = _save(_randomize(marian), marian_tokenizer, root / "marian", num_beams=3, max_length=24)

    mbart_tokenizer = transformers.AutoTokenizer.from_pretrained(get("mbart50_saved"))
    mbart = transformers.MBartForConditionalGeneration(transformers.MBartConfig(
        vocab_size=len(mbart_tokenizer), pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=2,
        forced_eos_token_id=2, **SMALL,
    ))
    out["mbart50"] = _save(_randomize(mbart), mbart_tokenizer, root / "mbart50", num_beams=2, max_length=22)
    return out


def _save(model, tokenizer, folder: Path, **generation) -> Path:
    import transformers

    config = model.config
    model.generation_config = transformers.GenerationConfig(
        pad_token_id=config.pad_token_id, eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id, **generation,
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    readable_by_v4(folder)
    return folder


CASES = {  # name -> (model, task, args, kwargs)
    "t5 en->fr prefix": ("t5", "translation_en_to_fr", [TEXTS[0]], {}),
    "t5 en->de prefix, list": ("t5", "translation_en_to_de", [TEXTS], {}),
    "t5 bare translation task": ("t5", "translation", [TEXTS[1]], {"num_beams": 1}),
    "t5 summarization params": ("t5", "summarization", [TEXTS[1]], {}),
    "marian beams": ("marian", "translation", [TEXTS[0]], {}),
    "marian greedy, list": ("marian", "translation", [TEXTS], {"num_beams": 1, "max_new_tokens": 12}),
    "marian two returned": ("marian", "translation", [TEXTS[1]], {"num_return_sequences": 2}),
    "mbart50 en->fr": ("mbart50", "translation", [TEXTS[0]], {"src_lang": "en_XX", "tgt_lang": "fr_XX"}),
    "mbart50 fr->de greedy": ("mbart50", "translation", [TEXTS[1]],
                              {"src_lang": "fr_XX", "tgt_lang": "de_DE", "num_beams": 1, "max_new_tokens": 10}),
}


@pytest.fixture(scope="module")
def v4_outputs(folders):
    calls = [{"task": task, "folder": str(folders[model]), "args": args, "kwargs": kwargs}
             for model, task, args, kwargs in CASES.values()]
    return dict(zip(CASES, run_v4(calls)))


@pytest.mark.parametrize("case", list(CASES))
def test_same_output_as_transformers_v4(folders, v4_outputs, case):
    model, task, args, kwargs = CASES[case]
    expected = v4_outputs[case]
    assert "ok" in expected, expected
    result = hugkit.pipeline(task, model=str(folders[model]))(*args, **kwargs)
    assert result == expected["ok"]


def test_task_prefix_and_languages_reach_the_model(folders, v4_outputs):
    """Different prefixes and target languages give different outputs (the parity above is not vacuous)."""
    german_t5 = hugkit.pipeline("translation_en_to_de", model=str(folders["t5"]))
    encoded = german_t5.preprocess([TEXTS[0]], {})[0]["input_ids"]
    assert encoded == german_t5.tokenizer("translate English to German: " + TEXTS[0])["input_ids"]
    mbart = hugkit.pipeline("translation", model=str(folders["mbart50"]))
    for code in ("fr_XX", "de_DE"):  # decoder start </s>, then the target language code forced as the first token
        ids = mbart(TEXTS[0], src_lang="en_XX", tgt_lang=code, return_tensors=True)[0]["translation_token_ids"]
        assert ids[:2].tolist() == [2, mbart.tokenizer.convert_tokens_to_ids(code)]
    source = mbart.preprocess([TEXTS[0]], {"src_lang": "de_DE", "tgt_lang": "fr_XX"})[0]["input_ids"]
    assert source[0] == mbart.tokenizer.convert_tokens_to_ids("de_DE")  # mBART-50 writes the source code first


def test_bare_translation_task_picks_the_checkpoints_first_pair(folders, caplog):
    with caplog.at_level(logging.WARNING, logger="hugkit"):
        pipe = hugkit.pipeline("translation", model=str(folders["t5"]))
    assert pipe.task == "translation_en_to_de"  # the first in config.json, which transformers writes key-sorted
    assert "defaulting to" in caplog.text


def test_unknown_language_codes_list_the_valid_ones(folders):
    pipe = hugkit.pipeline("translation", model=str(folders["mbart50"]))
    with pytest.raises(ValueError, match="fr_XX") as error:
        pipe(TEXTS[0], src_lang="en_XX", tgt_lang="klingon")
    assert "klingon" in str(error.value)
    with pytest.raises(ValueError, match="src_lang"):
        pipe(TEXTS[0], tgt_lang="fr_XX")


def test_a_pair_the_model_cannot_translate_is_refused(folders):
    with pytest.raises(ValueError, match="translation_en_to_fr"):
        hugkit.pipeline("translation_en_to_es", model=str(folders["t5"]))


def test_streaming_translation(folders):
    pipe = hugkit.pipeline("translation", model=str(folders["marian"]))
    full = pipe(TEXTS[0], num_beams=1)[0]["translation_text"]
    assert "".join(pipe(TEXTS[0], num_beams=1, stream=True)) == full
