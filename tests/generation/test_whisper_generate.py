"""Whisper's generate (hugkit.generation.whisper) against transformers' WhisperForConditionalGeneration.generate:
the same tokens, segments, scores and token timestamps, on a tiny random checkpoint (every branch: short-form,
timestamps, long-form windows, previous-text conditioning, temperature fallback, no-speech skipping, prompts,
language detection, sampling, beam search) and on the built-in Whisper tiny.en with speech spoken by espeak-ng."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pytest
import torch

import transformers
from hugkit.generation.whisper_alignment import dynamic_time_warping, median_filter
from hugkit.generation.whisper_logits import WhisperTimeStampLogitsProcessor
from hugkit.models.whisper import WhisperForConditionalGeneration
from tests.generation.whisper_tiny import EOS, NO_TIMESTAMPS, PREV_SOT, WINDOW, assert_same, features, save_tiny

LONG_FRAMES = 200  # 3.3 windows
FALLBACK = dict(temperature=(0.0, 0.4, 0.8), compression_ratio_threshold=1.35, logprob_threshold=-1.0)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(hugkit, transformers) on the same multilingual tiny checkpoint."""
    folder = save_tiny(tmp_path_factory.mktemp("whisper-tiny"))
    return (WhisperForConditionalGeneration.from_pretrained(folder),
            transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval())


@pytest.fixture(scope="module")
def english_models(tmp_path_factory):
    """(hugkit, transformers) on an English-only tiny checkpoint (forced_decoder_ids, is_multilingual=False)."""
    folder = save_tiny(tmp_path_factory.mktemp("whisper-tiny-en"), seed=1, english_only=True)
    return (WhisperForConditionalGeneration.from_pretrained(folder),
            transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval())


def long_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two audios of 200 and 130 frames, padded to 200, with their mask."""
    mask = torch.ones(2, LONG_FRAMES, dtype=torch.long)
    mask[1, 130:] = 0
    return features(2, LONG_FRAMES, seed=2), mask


def both(models, inputs: torch.Tensor, seed: int = 0, **kwargs):
    ours, reference = models
    torch.manual_seed(seed)
    expected = reference.generate(inputs, **kwargs)
    torch.manual_seed(seed)
    out = ours.generate(inputs, **kwargs)
    return out, expected


SHORT_CASES = {
    "greedy": dict(language="en"),
    "dict_with_scores": dict(language="en", return_dict_in_generate=True, output_scores=True),
    "timestamps": dict(language="de", return_timestamps=True, return_segments=True),
    "token_timestamps": dict(language="de", return_token_timestamps=True),
    "timestamps_and_token_timestamps": dict(language="fr", return_timestamps=True, return_token_timestamps=True,
                                            return_segments=True),
    "translate": dict(language="fr", task="translate", return_timestamps=True),
    "language_per_row": dict(language=["en", "german", "<|fr|>"], task="transcribe"),
    "detected_language": dict(),
    "prompt_ids": dict(language="en", prompt_ids=torch.tensor([PREV_SOT, 7, 8, 9])),
    "max_new_tokens": dict(language="en", max_new_tokens=6, return_timestamps=True),
    "sampling": dict(language="fr", temperature=0.7),
    "sampling_fallback": dict(language="en", **FALLBACK, return_segments=True),
    "num_return_sequences": dict(language="de", temperature=0.9, do_sample=True, num_return_sequences=2),
    "short_audio": dict(language="en", return_timestamps=True),
    "beam_search": dict(language="en", num_beams=3),
    "beam_search_timestamps": dict(language="de", num_beams=2, return_timestamps=True, length_penalty=0.5,
                                   early_stopping=True),
}


@pytest.mark.parametrize("case", sorted(SHORT_CASES))
def test_short_form_matches_transformers(models, case):
    kwargs = dict(SHORT_CASES[case])
    inputs = features(3)[:, :, :45] if case == "short_audio" else features(3)
    out, expected = both(models, inputs, seed=11, **kwargs)
    assert_same(out, expected)


LONG_CASES = {
    "timestamps": dict(language="en", return_timestamps=True, return_segments=True),
    "condition_on_prev_tokens": dict(language="en", condition_on_prev_tokens=True, return_segments=True),
    "temperature_fallback": dict(language="en", condition_on_prev_tokens=True, **FALLBACK, return_segments=True),
    "compression_fallback": dict(language="en", condition_on_prev_tokens=True, temperature=(0.0, 0.4, 0.8),
                                 compression_ratio_threshold=1.35, logprob_threshold=-2.0),
    "no_speech_skip": dict(language="en", temperature=(0.0, 0.5, 1.0), logprob_threshold=-1.2,
                           no_speech_threshold=3e-4, return_segments=True),
    "token_timestamps": dict(language="en", return_token_timestamps=True, return_segments=True),
    "prompt_first_segment": dict(language="en", prompt_ids=torch.tensor([PREV_SOT, 7, 8, 9]),
                                 condition_on_prev_tokens=True, return_segments=True),
    "prompt_all_segments": dict(language="en", prompt_ids=torch.tensor([PREV_SOT, 7, 8, 9]),
                                condition_on_prev_tokens=True, prompt_condition_type="all-segments"),
    "detected_language": dict(return_timestamps=True),
    "dict_results": dict(language="de", return_dict_in_generate=True, output_scores=True),
    "beam_search": dict(language="en", num_beams=3, condition_on_prev_tokens=True, return_segments=True),
}


@pytest.mark.parametrize("case", sorted(LONG_CASES))
@pytest.mark.filterwarnings("ignore:__array_wrap__:DeprecationWarning")  # transformers' np.repeat on a tensor
def test_long_form_matches_transformers(models, case):
    inputs, mask = long_batch()
    out, expected = both(models, inputs, seed=3, attention_mask=mask, **LONG_CASES[case])
    assert_same(out, expected)
    if isinstance(expected, dict) and "segments" in expected:
        assert max(len(row) for row in expected["segments"]) > 3  # several windows and segments per audio


def test_long_form_single_audio_without_mask(models):
    out, expected = both(models, features(1, 150, seed=5), return_timestamps=True, language="de", return_segments=True)
    assert_same(out, expected)


def test_fallback_and_skipping_take_effect(models):
    """The thresholds of the fallback cases change the result (so those cases test the fallback paths)."""
    ours, _ = models
    inputs, mask = long_batch()

    def run(**kwargs):
        torch.manual_seed(3)
        return ours.generate(inputs, attention_mask=mask, language="en", **kwargs)

    plain = run(condition_on_prev_tokens=True)
    assert not torch.equal(run(condition_on_prev_tokens=True, **FALLBACK), plain)
    skipped = run(temperature=(0.0, 0.5, 1.0), logprob_threshold=-1.2, no_speech_threshold=3e-4)
    assert skipped.shape[1] < run(temperature=(0.0, 0.5, 1.0), logprob_threshold=-1.2).shape[1]


def test_english_only_model(english_models):
    inputs = features(2, seed=6)
    for kwargs in ({}, {"return_timestamps": True}, {"return_token_timestamps": True}):
        out, expected = both(english_models, inputs, **kwargs)
        assert_same(out, expected)
    ours, _ = english_models
    with pytest.raises(ValueError, match=re.escape("English-only Whisper model") + ".*language='fr'"):
        ours.generate(inputs, language="fr")
    with pytest.raises(ValueError, match="English-only.*task='translate'"):
        ours.generate(inputs, task="translate")


def test_output_formats(models):
    """What the ASR pipeline reads: token ids without prompt or end-of-text, segments with seconds, token times."""
    ours, _ = models
    inputs, mask = long_batch()
    plain = ours.generate(inputs, attention_mask=mask, language="en")
    assert plain.dtype == torch.long and plain.dim() == 2
    assert not bool(torch.isin(plain, torch.tensor([61, 62, 66])).any())  # no prompt tokens
    out = ours.generate(inputs, attention_mask=mask, language="en", return_token_timestamps=True, return_segments=True)
    assert set(out) == {"sequences", "token_timestamps", "segments"}
    assert torch.equal(out["sequences"], plain)
    assert out["token_timestamps"].shape == plain.shape and out["token_timestamps"].dtype == torch.float32
    for row, segments in enumerate(out["segments"]):
        assert torch.equal(torch.cat([s["tokens"] for s in segments]), plain[row, : sum(len(s["tokens"]) for s in segments)])
        for segment in segments:
            assert {"start", "end", "tokens", "idxs", "result", "token_timestamps"} <= set(segment)
            assert segment["start"].dtype == torch.float64 and segment["token_timestamps"].shape == segment["tokens"].shape
    assert float(out["segments"][1][-1]["end"]) <= 130 * 0.01 + 0.6  # the second audio ends at 1.3 s


def test_bad_arguments_have_clear_errors(models):
    ours, _ = models
    inputs, mask = long_batch()
    with pytest.raises(ValueError, match="return_timestamps=True"):
        ours.generate(inputs, attention_mask=mask, return_timestamps=False)
    with pytest.raises(ValueError, match="needs attention_mask"):
        ours.generate(inputs, return_timestamps=True)
    with pytest.raises(TypeError, match="unexpected keyword argument.*bogus"):
        ours.generate(features(1), bogus=1)
    with pytest.raises(ValueError, match="Unknown language 'klingon'"):
        ours.generate(features(1), language="klingon")
    with pytest.raises(ValueError, match="needs logprob_threshold too"):
        ours.generate(features(1), no_speech_threshold=0.6)
    with pytest.raises(ValueError, match=re.escape("input_features should be log-mel features of shape (batch, 80, frames)")):
        ours.generate(torch.zeros(1, 40, WINDOW))
    with pytest.raises(ValueError, match="max_target_positions"):
        ours.generate(features(1), max_new_tokens=60)
    with pytest.raises(NotImplementedError, match="num_beams=2 with per-window scores"):
        ours.generate(features(1), num_beams=2, return_token_timestamps=True)
    no_heads = WhisperForConditionalGeneration(ours.config)
    no_heads.generation_config = ours.generation_config.copy()
    del no_heads.generation_config.alignment_heads
    with pytest.raises(ValueError, match="alignment_heads"):
        no_heads.generate(features(1), return_token_timestamps=True)


def test_timestamp_processor_matches_transformers():
    """The timestamp grammar on hand-made histories (pairs, monotonic, the first token, the probability rule)."""
    config = transformers.GenerationConfig(no_timestamps_token_id=NO_TIMESTAMPS, eos_token_id=EOS,
                                           max_initial_timestamp_index=5)
    reference = transformers.WhisperTimeStampLogitsProcessor(config, begin_index=3)
    ours = WhisperTimeStampLogitsProcessor(NO_TIMESTAMPS, EOS, begin_index=3, max_initial_timestamp_index=5)
    prompt = [61, 62, 66]
    histories = [[], [75], [75, 9], [75, 9, 80], [75, 9, 80, 80], [75, 9, 12], [71, 71, 4]]
    generator = torch.Generator().manual_seed(0)
    for history in histories:
        ids = torch.tensor([prompt + history])
        for scale in (1.0, 6.0):
            scores = torch.randn(1, 120, generator=generator) * scale
            scores[0, 90:] += 3.0 * (scale > 1)  # make the timestamp mass win sometimes
            assert_same(ours(ids, scores), reference(ids, scores.clone()), f"history {history}")
    batch = torch.tensor([prompt + [75, 9], prompt + [75, 9]])
    scores = torch.randn(2, 120, generator=generator)
    assert_same(ours(batch, scores), reference(batch, scores.clone()), "batch")


def test_alignment_helpers_match_transformers():
    from transformers.models.whisper import generation_whisper as reference

    generator = torch.Generator().manual_seed(1)
    weights = torch.rand(2, 3, 9, 40, generator=generator)
    assert_same(median_filter(weights, 7), reference._median_filter(weights, 7), "median filter")
    matrix = -weights[0, 0].double().numpy()
    # random costs, costs with ties (rounded, all zero: the tie rule decides), and one-row / one-column matrices
    for costs in (matrix, np.round(matrix * 3) / 3, np.zeros((6, 9)), matrix[:1], matrix[:, :1]):
        for ours, theirs in zip(dynamic_time_warping(costs), reference._dynamic_time_warping(costs)):
            assert np.array_equal(ours, theirs)
    with pytest.raises(ValueError, match="odd"):
        median_filter(weights, 4)


# --- the built-in Whisper tiny.en on real speech ------------------------------------------------------------------------


def test_builtin_tiny_en_matches_transformers_on_speech():
    from hugkit.convert import builtin_whisper
    from tests.assets import require
    from tests.convert.test_ctranslate2_whisper import (
        CHUNK_SAMPLES, PACKAGE_ROOT, SAMPLING_RATE, WHISPER_CT2, require_tool, speak,
    )

    require(WHISPER_CT2)
    require_tool(shutil.which("espeak-ng") is not None, "espeak-ng is missing: apt-get install -y espeak-ng")
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(PACKAGE_ROOT))
        folder = builtin_whisper.builtin_whisper_folder()
    processor = transformers.WhisperProcessor.from_pretrained(folder)
    reference = transformers.WhisperForConditionalGeneration.from_pretrained(folder).eval()
    ours = WhisperForConditionalGeneration.from_pretrained(folder)
    audio = speak("Please call Stella and ask her to bring these things with her from the store.")
    seconds = len(audio) / SAMPLING_RATE
    # the feature extractor pads the clip to 30 s; the mask marks the speech's frames (token timestamps use it)
    batch = processor.feature_extractor(audio, sampling_rate=SAMPLING_RATE, return_tensors="pt",
                                        return_attention_mask=True)
    inputs, mask = batch.input_features, batch.attention_mask
    assert inputs.shape[-1] == CHUNK_SAMPLES // 160 and int(mask.sum()) < inputs.shape[-1]
    for kwargs in ({}, {"return_timestamps": True}, {"return_timestamps": True, "return_token_timestamps": True,
                                                     "attention_mask": mask}):
        expected = reference.generate(inputs, **kwargs)
        out = ours.generate(inputs, **kwargs)
        assert_same(out, expected, f"tiny.en {kwargs}", atol=1e-4)
    text = processor.tokenizer.decode(out["sequences"][0], decode_with_timestamps=True)
    assert text.startswith("<|0.00|> Please call Stella") and text.endswith("from the store.<|4.88|>"), text
    times = out["token_timestamps"][0]
    assert bool((times[1:] >= times[:-1]).all()) and 3.0 < float(times[-1]) <= seconds + 0.5, (times, seconds)
