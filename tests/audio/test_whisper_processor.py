"""WhisperTokenizer extras, WhisperProcessor, AutoProcessor / AutoFeatureExtractor against transformers on the
built-in Whisper tiny.en folder: decoding with timestamps and offsets, prompts, and the ASR pipeline's merging of
chunked outputs (``_decode_asr``) on many random chunk sequences."""

from __future__ import annotations

import copy
import json
import random
import shutil

import numpy as np
import pytest
import torch

from hugkit.audio.whisper_decoding import (
    LANGUAGES,
    WhisperTokenizer,
    combine_tokens_into_words,
    decode_asr,
    find_longest_common_sequence,
    language_code,
)

from .signals import chirps, sweep
from .speech import builtin_folder

SOT, EN, FR, TRANSLATE, TRANSCRIBE, PREV, NOTIMESTAMPS, EOT = 50257, 50258, 50264, 50357, 50358, 50360, 50362, 50256
TS = 50363  # <|0.00|>


@pytest.fixture(scope="module")
def folder():
    return builtin_folder()


@pytest.fixture(scope="module")
def tokenizers(folder):
    import transformers

    return WhisperTokenizer.from_pretrained(folder), transformers.WhisperTokenizer.from_pretrained(folder)


def _text_ids(reference, rng: random.Random, count: int) -> list[int]:
    pieces = " the cat sat on a mat, and then it ran away quickly (home). \"Yes!\" 42 times — naïve café 東京".split(" ")
    ids: list[int] = []
    for _ in range(count):
        ids += reference.encode(" " + rng.choice(pieces), add_special_tokens=False)
    return ids


def _random_sequence(reference, rng: random.Random, timestamps: bool) -> list[int]:
    ids = [SOT] + ([EN] if rng.random() < 0.2 else []) + ([] if timestamps else [NOTIMESTAMPS])
    time = rng.randint(0, 20)
    for _ in range(rng.randint(0, 5)):
        if timestamps:
            ids.append(TS + time)
        ids += _text_ids(reference, rng, rng.randint(1, 5))
        time += rng.randint(1, 200)
        if time > 1500:  # long-form output: the next 30-s window starts again from a small time
            time = rng.randint(0, 40)
        if timestamps:
            ids += [TS + time] * (2 if rng.random() < 0.3 else 1)
    if rng.random() < 0.2:
        ids = [PREV] + _text_ids(reference, rng, 3) + ids
    return ids + [EOT]


def test_decode_matches_transformers(tokenizers):
    ours, reference = tokenizers
    rng = random.Random(0)
    options = [{}, {"skip_special_tokens": True}, {"decode_with_timestamps": True},
               {"decode_with_timestamps": True, "skip_special_tokens": True}, {"output_offsets": True},
               {"output_offsets": True, "skip_special_tokens": True, "time_precision": 0.04},
               {"basic_normalize": True}, {"basic_normalize": True, "remove_diacritics": True}]
    for _ in range(150):
        ids = _random_sequence(reference, rng, timestamps=rng.random() < 0.8)
        for kwargs in options:
            assert ours.decode(ids, **kwargs) == reference.decode(ids, **kwargs), (ids, kwargs)
    batch = [_random_sequence(reference, rng, True) for _ in range(3)]
    assert ours.batch_decode(batch, skip_special_tokens=True) == reference.batch_decode(batch, skip_special_tokens=True)
    assert ours.decode(torch.tensor(batch[0])) == reference.decode(torch.tensor(batch[0]))
    assert ours.decode([TS, 15496, 50400], decode_with_timestamps=True) == "<|0.00|>Hello<|0.74|>"


def test_prompts_and_prefix_tokens_match_transformers(folder):
    import transformers

    ours, reference = WhisperTokenizer.from_pretrained(folder), transformers.WhisperTokenizer.from_pretrained(folder)
    assert ours.timestamp_ids() == reference.timestamp_ids() and ours.timestamp_begin == TS
    assert ours.get_decoder_prompt_ids() == reference.get_decoder_prompt_ids() == [(1, NOTIMESTAMPS)]
    for language, task, no_timestamps in (("french", "translate", False), ("de", "transcribe", True),
                                          ("english", None, True)):
        assert ours.get_decoder_prompt_ids(task=task, language=language, no_timestamps=no_timestamps) == \
            reference.get_decoder_prompt_ids(task=task, language=language, no_timestamps=no_timestamps)
        assert ours.prefix_tokens == reference.prefix_tokens
        assert ours("Hello world").input_ids == reference("Hello world").input_ids  # the prefix goes into __call__
    assert ours.get_prompt_ids("  hello world ").tolist() == reference.get_prompt_ids("  hello world ").tolist()
    assert ours.get_prompt_ids("hi", return_tensors="pt").tolist() == [PREV, 23105]
    with pytest.raises(ValueError, match="special token '<\\|endoftext\\|>'"):
        ours.get_prompt_ids("hi <|endoftext|>")
    with pytest.raises(ValueError, match="Unsupported language 'klingon'.*english"):
        ours.set_prefix_tokens(language="klingon")
    with pytest.raises(ValueError, match="Whisper's tasks are"):
        ours.set_prefix_tokens(task="summarize")
    assert language_code("<|fr|>") == "fr" and language_code("Mandarin") == "zh" and LANGUAGES["yue"] == "cantonese"
    with pytest.raises(NotImplementedError, match="basic_normalize"):
        ours.decode([15496], normalize=True)


def _chunk_outputs(reference, rng: random.Random, trial: int, timestamps) -> list[dict]:
    count = rng.randint(1, 4)
    chunked = count > 1 or rng.random() < 0.5
    outputs = []
    for index in range(count):
        ids = _random_sequence(reference, rng, bool(timestamps))
        output = {"tokens": torch.tensor([ids])}
        if timestamps == "word":
            times = np.cumsum(np.random.default_rng(trial * 10 + index).random(len(ids)) * 0.3)
            output["token_timestamps"] = torch.tensor(times[None])
        if chunked:
            last = index == count - 1
            output["stride"] = (rng.uniform(5, 30) if last else 30.0, 0.0 if index == 0 else 5.0, 0.0 if last else 5.0)
        outputs.append(output)
    return outputs


def test_decode_asr_matches_transformers(tokenizers):
    from transformers.models.whisper.tokenization_whisper import _decode_asr

    ours, reference = tokenizers
    rng = random.Random(1)
    for trial in range(300):
        timestamps = rng.choice([False, True, "word"])
        language = rng.choice([None, True])
        outputs = _chunk_outputs(reference, rng, trial, timestamps)
        expected = _decode_asr(reference, copy.deepcopy(outputs), return_timestamps=timestamps,
                               return_language=language, time_precision=0.02)
        got = decode_asr(ours, copy.deepcopy(outputs), return_timestamps=timestamps, return_language=language,
                         time_precision=0.02)
        assert got == expected, (trial, timestamps, language)
    assert ours.decode_asr is not None and ours._decode_asr.__func__ is WhisperTokenizer.decode_asr


def test_longest_common_sequence_and_words_match_transformers(tokenizers):
    from transformers.models.whisper.tokenization_whisper import _combine_tokens_into_words
    from transformers.models.whisper.tokenization_whisper import _find_longest_common_sequence as reference_merge

    ours, reference = tokenizers
    rng = random.Random(2)
    for _ in range(200):
        base = [rng.randint(0, 9) for _ in range(rng.randint(2, 30))]
        runs, start = [], 0
        while start < len(base):
            stop = start + rng.randint(2, 12)
            run = base[start:stop]
            if run and rng.random() < 0.3:
                run[rng.randrange(len(run))] = 99  # a disagreement inside an overlap
            runs.append(run)
            start = max(start + 1, stop - rng.randint(0, 4))
        times = [[(i * 0.1, i * 0.1 + 0.1) for i in range(len(run))] for run in runs]
        assert find_longest_common_sequence(runs, []) == reference_merge(runs, [])
        assert find_longest_common_sequence(runs, times) == reference_merge(runs, times)
        assert find_longest_common_sequence(runs) == reference_merge(runs)
    for _ in range(100):
        ids = _text_ids(reference, rng, rng.randint(1, 12))
        for language in (None, "chinese"):
            assert combine_tokens_into_words(ours, ids, language) == _combine_tokens_into_words(reference, ids, language)


def test_processor_matches_transformers(folder, tmp_path):
    import transformers

    from hugkit import WhisperProcessor

    ours = WhisperProcessor.from_pretrained(folder)
    reference = transformers.WhisperProcessor.from_pretrained(folder)
    audio = [sweep(16000, 3.0), chirps(16000, 1.5)]
    got = ours(audio, sampling_rate=16000, return_tensors="np")
    expected = reference(audio, sampling_rate=16000, return_tensors="np")
    np.testing.assert_allclose(got["input_features"], expected["input_features"], atol=1e-4)
    assert ours(text="Hello world").input_ids == reference(text="Hello world").input_ids == [SOT, NOTIMESTAMPS, 15496,
                                                                                          995, EOT]
    both = ours(audio[0], text="Hello world", sampling_rate=16000)
    assert both["labels"] == [SOT, NOTIMESTAMPS, 15496, 995, EOT] and both["input_features"].shape == (1, 80, 3000)
    ids = [SOT, TS, 15496, 995, 50400, EOT]
    assert ours.decode(ids, output_offsets=True) == reference.decode(ids, output_offsets=True)
    assert ours.batch_decode([ids], skip_special_tokens=True) == reference.batch_decode([ids], skip_special_tokens=True)
    assert ours.get_decoder_prompt_ids() == reference.get_decoder_prompt_ids()
    assert ours.model_input_names == ["input_features", "input_ids", "attention_mask"]
    with pytest.raises(ValueError, match="needs audio"):
        ours()
    with pytest.raises(ValueError, match="expects audio at 16000 Hz"):
        ours(audio[0], sampling_rate=8000)
    with pytest.raises(TypeError, match="load_audio"):
        ours("speech.wav")

    # Saved by hugkit, loaded by transformers (and back): the same settings and vocabulary.
    ours.save_pretrained(tmp_path / "saved")
    settings = json.loads((tmp_path / "saved" / "preprocessor_config.json").read_text())
    assert settings["processor_class"] == "WhisperProcessor" and settings["feature_size"] == 80
    again = transformers.WhisperProcessor.from_pretrained(tmp_path / "saved")
    assert again.tokenizer("Hello world").input_ids == reference.tokenizer("Hello world").input_ids
    assert len(again.tokenizer) == len(reference.tokenizer)
    assert WhisperProcessor.from_pretrained(tmp_path / "saved").tokenizer.decode(ids) == reference.decode(ids)


def test_auto_classes_pick_whisper_and_explain_the_rest(folder, tmp_path):
    from hugkit import AutoFeatureExtractor, AutoProcessor, WhisperFeatureExtractor, WhisperProcessor
    from hugkit.tokenization.base import PreTrainedTokenizerFast

    processor = AutoProcessor.from_pretrained(folder)
    assert isinstance(processor, WhisperProcessor) and isinstance(processor.tokenizer, WhisperTokenizer)
    assert isinstance(AutoFeatureExtractor.from_pretrained(folder), WhisperFeatureExtractor)
    assert AutoProcessor.from_pretrained(folder, language="french").tokenizer.prefix_tokens[:2] == [SOT, FR]

    # Named by config.json's model_type only (no processor_class anywhere).
    bare = tmp_path / "bare"
    shutil.copytree(folder, bare)
    settings = json.loads((bare / "preprocessor_config.json").read_text())
    for key in ("processor_class", "feature_extractor_type"):
        settings.pop(key, None)
    (bare / "preprocessor_config.json").write_text(json.dumps(settings))
    assert isinstance(AutoProcessor.from_pretrained(bare), WhisperProcessor)

    only_tokenizer = tmp_path / "tokenizer"
    only_tokenizer.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(folder / name, only_tokenizer / name)
    assert isinstance(AutoProcessor.from_pretrained(only_tokenizer), PreTrainedTokenizerFast)
    with pytest.raises(ValueError, match="no preprocessor_config.json naming a feature extractor"):
        AutoFeatureExtractor.from_pretrained(only_tokenizer)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no processor, feature extractor or tokenizer files"):
        AutoProcessor.from_pretrained(empty)
    other = tmp_path / "other"
    shutil.copytree(only_tokenizer, other)
    (other / "preprocessor_config.json").write_text(json.dumps({"processor_class": "Wav2Vec2Processor",
                                                                "feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    with pytest.raises(ValueError, match="uses a Wav2Vec2Processor, which hugkit does not have"):
        AutoProcessor.from_pretrained(other)
    with pytest.raises(ValueError, match="uses a Wav2Vec2FeatureExtractor"):
        AutoFeatureExtractor.from_pretrained(other)
    with pytest.raises(EnvironmentError, match="from_pretrained"):
        AutoProcessor()
