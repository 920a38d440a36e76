"""hugkit's WhisperFeatureExtractor against transformers': the float64 numpy path within 1e-4 (max abs on the log-mel,
the issue's bar), its torch path (what transformers feeds a model when torch is installed) within 1e-5, the
attention masks exactly, config files field for field, and what the ASR pipeline feeds Whisper."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from hugkit.audio import BatchFeature, WhisperFeatureExtractor, load_audio, mel_filter_bank

from .signals import (
    chirps, noise, pipeline_inputs, reference_features, silence, speak, sweep, tone, transformers_numpy_path,
)

NUMPY_TOL = 1e-4
TORCH_TOL = 1e-5
SIGNALS = {
    "sweep": lambda: sweep(16000, 30.0, 60.0, 7900.0),
    "noise": lambda: noise(16000, 12.0),
    "silence": lambda: silence(16000, 5.0),
    "chirps": lambda: chirps(16000, 8.0),
    "tone": lambda: tone(16000, 3.0, 1000.0, 0.9),
}


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def _ours(x, feature_size=80, **kwargs) -> dict[str, np.ndarray]:
    settings = {k: kwargs.pop(k) for k in ("padding_side",) if k in kwargs}
    out = WhisperFeatureExtractor(feature_size=feature_size, **settings)(x, sampling_rate=16000, return_tensors="np", **kwargs)
    return dict(out)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filter_bank_equals_transformers(n_mels):
    from transformers.audio_utils import mel_filter_bank as reference

    ours = mel_filter_bank(201, n_mels, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    theirs = reference(201, n_mels, 0.0, 8000.0, 16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(WhisperFeatureExtractor(feature_size=n_mels).mel_filters, theirs, rtol=1e-12, atol=1e-15)
    htk = mel_filter_bank(257, 40, 20.0, 7600.0, 16000, norm=None, mel_scale="htk")
    np.testing.assert_allclose(htk, reference(257, 40, 20.0, 7600.0, 16000, norm=None, mel_scale="htk"), rtol=1e-12)


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("signal", sorted(SIGNALS))
def test_one_clip_padded_to_30s(n_mels, signal):
    x = SIGNALS[signal]()
    ours = _ours(x, n_mels)["input_features"]
    assert ours.shape == (1, n_mels, 3000) and ours.dtype == np.float32
    assert _max_abs(ours, reference_features(x, numpy_path=True, feature_size=n_mels)["input_features"]) < NUMPY_TOL
    assert _max_abs(ours, reference_features(x, numpy_path=False, feature_size=n_mels)["input_features"]) < TORCH_TOL


@pytest.mark.parametrize("n_mels", [80, 128])
def test_truncated_and_long_form(n_mels):
    x = np.concatenate([chirps(16000, 20.0), sweep(16000, 21.0)])  # 41 s
    ours = _ours(x, n_mels)["input_features"]
    assert ours.shape == (1, n_mels, 3000)
    assert _max_abs(ours, reference_features(x, numpy_path=True, feature_size=n_mels)["input_features"]) < NUMPY_TOL
    # The pipeline's long-form call: no truncation, padded to the clip itself, with the mask.
    kwargs = dict(truncation=False, padding="longest", return_attention_mask=True)
    ours = _ours(x, n_mels, **kwargs)
    theirs = reference_features(x, numpy_path=True, feature_size=n_mels, **kwargs)
    assert ours["input_features"].shape == (1, n_mels, 4100)
    assert _max_abs(ours["input_features"], theirs["input_features"]) < NUMPY_TOL
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])


@pytest.mark.parametrize("n_mels", [80, 128])
@pytest.mark.parametrize("padding", ["max_length", "longest"])
def test_batch_of_different_lengths_with_mask(n_mels, padding):
    batch = [sweep(16000, 7.3), noise(16000, 12.0), chirps(16000, 2.01), tone(16000, 35.0)]
    kwargs = dict(padding=padding, return_attention_mask=True)
    ours = _ours(batch, n_mels, **kwargs)
    theirs = reference_features(batch, numpy_path=True, feature_size=n_mels, **kwargs)
    frames = 3000
    assert ours["input_features"].shape == (4, n_mels, frames)
    assert _max_abs(ours["input_features"], theirs["input_features"]) < NUMPY_TOL
    assert ours["attention_mask"].dtype == np.int32 and ours["attention_mask"].shape == (4, frames)
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    assert ours["attention_mask"][2].sum() == int(np.ceil(2.01 * 16000 / 160))
    # Batched numbers are each clip's own numbers (the floor at max - 8 is per clip).
    alone = _ours(batch[2], n_mels, padding="max_length")["input_features"][0]
    np.testing.assert_allclose(ours["input_features"][2], alone, atol=1e-6)


def test_longest_without_the_30s_clip_and_pad_to_multiple():
    batch = [sweep(16000, 1.234), chirps(16000, 3.5)]
    for kwargs in (dict(padding="longest"), dict(padding="longest", pad_to_multiple_of=16000),
                   dict(padding="max_length", max_length=40000, return_attention_mask=True)):
        ours = _ours(batch, **kwargs)
        theirs = reference_features(batch, numpy_path=True, **kwargs)
        assert _max_abs(ours["input_features"], theirs["input_features"]) < NUMPY_TOL, kwargs
        assert set(ours) == set(theirs)
    assert _ours(batch, padding="longest")["input_features"].shape == (2, 80, 350)
    assert _ours(batch, padding="longest", pad_to_multiple_of=16000)["input_features"].shape == (2, 80, 400)


@pytest.mark.parametrize("n_mels", [80, 128])
def test_do_normalize(n_mels):
    batch = [sweep(16000, 4.0, amplitude=0.05) + 0.02, chirps(16000, 9.0)]
    kwargs = dict(do_normalize=True, return_attention_mask=True)
    ours = _ours(batch, n_mels, **kwargs)
    theirs = reference_features(batch, numpy_path=True, feature_size=n_mels, **kwargs)
    assert _max_abs(ours["input_features"], theirs["input_features"]) < NUMPY_TOL
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    plain = _ours(batch, n_mels)["input_features"]
    assert np.abs(plain - ours["input_features"]).max() > 0.1  # normalizing did change the features


def test_attention_mask_is_per_frame_where_transformers_gives_samples():
    x = chirps(16000, 3.0)
    ours = _ours(x, do_normalize=True)
    assert "attention_mask" not in ours  # transformers leaks a (1, 480000) sample mask here
    theirs = reference_features(x, numpy_path=False, do_normalize=True)
    assert theirs["attention_mask"].shape == (1, 480000)
    assert _max_abs(ours["input_features"], theirs["input_features"]) < TORCH_TOL
    config_says_yes = WhisperFeatureExtractor(return_attention_mask=True)(x, sampling_rate=16000)
    assert tuple(config_says_yes["attention_mask"].shape) == (1, 3000)
    assert int(config_says_yes["attention_mask"].sum()) == 300


def test_left_padding():
    batch = [chirps(16000, 2.0), noise(16000, 5.0)]
    kwargs = dict(padding_side="left", return_attention_mask=True)
    ours = _ours(batch, **kwargs)
    theirs = reference_features(batch, numpy_path=True, **kwargs)
    assert _max_abs(ours["input_features"], theirs["input_features"]) < NUMPY_TOL
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])
    assert ours["attention_mask"][0, 0] == 0 and ours["attention_mask"][0, -1] == 1


def test_dither_draws_the_same_noise_as_transformers_torch_path():
    from transformers import WhisperFeatureExtractor as Reference

    x = np.concatenate([silence(16000, 1.0), chirps(16000, 1.0)])
    torch.manual_seed(0)
    ours = WhisperFeatureExtractor(dither=1e-3)(x, sampling_rate=16000, return_tensors="np")["input_features"]
    torch.manual_seed(0)
    theirs = Reference(dither=1e-3)(x, sampling_rate=16000, return_tensors="np")["input_features"]
    assert _max_abs(ours, theirs) < TORCH_TOL
    assert np.abs(ours - _ours(x)["input_features"]).max() > 0.1  # dither lifts the silent part


def test_input_kinds_and_return_types():
    clips = [sweep(16000, 2.0), noise(16000, 2.0)]
    extractor = WhisperFeatureExtractor()
    expected = extractor(clips, return_tensors="np")["input_features"]
    as_pt = extractor(clips)
    assert isinstance(as_pt, BatchFeature) and isinstance(as_pt.input_features, torch.Tensor)
    assert as_pt.input_features.dtype == torch.float32
    np.testing.assert_array_equal(as_pt.input_features.numpy(), expected)
    np.testing.assert_array_equal(extractor(np.stack(clips), return_tensors="np")["input_features"], expected)
    np.testing.assert_array_equal(extractor(torch.from_numpy(np.stack(clips)), return_tensors="np")["input_features"],
                                  expected)
    np.testing.assert_array_equal(extractor([c.astype(np.float64) for c in clips], return_tensors=None)["input_features"],
                                  expected)
    single = extractor(clips[0].tolist(), return_tensors="np")["input_features"]
    np.testing.assert_array_equal(single[0], expected[0])
    half = as_pt.to(torch.float16)
    assert half.input_features.dtype == torch.float16
    masked = extractor(clips, return_attention_mask=True).to(torch.float16)
    assert masked.attention_mask.dtype == torch.int32  # masks stay integer, as in transformers


def test_pipeline_feeds_the_same_features(tmp_path):
    """transformers' ASR pipeline preprocessing vs hugkit's load_audio + extractor, where neither resamples."""
    mono = chirps(16000, 6.0)
    pair = np.stack([mono, noise(16000, 6.0)])
    extractor = WhisperFeatureExtractor()
    cases = {
        "array": (mono, mono),
        "dict stereo": ({"array": pair, "sampling_rate": 16000}, {"array": pair, "sampling_rate": 16000}),
        "raw dict": ({"raw": torch.from_numpy(mono), "sampling_rate": 16000}, {"raw": mono, "sampling_rate": 16000}),
    }
    for name, (ours_in, theirs_in) in cases.items():
        ours = extractor(load_audio(ours_in), sampling_rate=16000, return_attention_mask=True, return_tensors="np")
        theirs = pipeline_inputs(theirs_in)
        assert _max_abs(ours["input_features"], theirs["input_features"]) < TORCH_TOL, name
        np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])


def test_pipeline_file_input_through_ffmpeg(tmp_path):
    from .signals import require_tool

    require_tool("ffmpeg")
    path = tmp_path / "mono16k.flac"
    sf.write(path, chirps(16000, 4.0), 16000, subtype="PCM_16")
    ours = WhisperFeatureExtractor()(load_audio(path), return_attention_mask=True, return_tensors="np")
    theirs = pipeline_inputs(str(path))
    assert _max_abs(ours["input_features"], theirs["input_features"]) < TORCH_TOL
    np.testing.assert_array_equal(ours["attention_mask"], theirs["attention_mask"])


@pytest.mark.parametrize("n_mels", [80, 128])
def test_real_speech(tmp_path, n_mels):
    from transformers.audio_utils import load_audio as reference_load

    path = speak("The quick brown fox jumps over the lazy dog, and Whisper writes it down.", tmp_path / "speech.wav")
    ours = WhisperFeatureExtractor(feature_size=n_mels)(load_audio(path), return_tensors="np")["input_features"]
    samples = reference_load(str(path), sampling_rate=16000, backend="soundfile")
    theirs = reference_features(samples, numpy_path=True, feature_size=n_mels)["input_features"]
    assert _max_abs(ours, theirs) < NUMPY_TOL
    assert ours.max() - ours.min() > 1.0  # speech, not silence


# --- configs --------------------------------------------------------------------------------------
def test_save_matches_transformers_and_round_trips(tmp_path):
    from transformers import WhisperFeatureExtractor as Reference

    for settings in ({}, {"feature_size": 128}, {"return_attention_mask": True, "chunk_length": 20, "dither": 1e-5}):
        ours = WhisperFeatureExtractor(**settings)
        assert json.loads(ours.to_json_string()) == json.loads(Reference(**settings).to_json_string())
        ours.save_pretrained(tmp_path / "saved")
        again = WhisperFeatureExtractor.from_pretrained(tmp_path / "saved")
        assert again.to_dict() == ours.to_dict()
        loaded_by_transformers = Reference.from_pretrained(tmp_path / "saved")
        assert json.loads(loaded_by_transformers.to_json_string()) == ours.to_dict()
    assert WhisperFeatureExtractor(chunk_length=20).n_samples == 320000


def test_loads_a_whisper_checkpoint_config(tmp_path):
    """The openai/whisper-* layout: a stored mel_filters table, processor_class, derived sizes."""
    from transformers import WhisperFeatureExtractor as Reference

    table = Reference(feature_size=128).mel_filters
    config = {
        "chunk_length": 30, "feature_extractor_type": "WhisperFeatureExtractor", "feature_size": 128,
        "hop_length": 160, "mel_filters": (table.T * 0).tolist(), "n_fft": 400, "n_samples": 480000,
        "nb_max_frames": 3000, "padding_side": "right", "padding_value": 0.0, "processor_class": "WhisperProcessor",
        "return_attention_mask": False, "sampling_rate": 16000, "custom_field": "kept",
    }
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(config))
    ours = WhisperFeatureExtractor.from_pretrained(tmp_path)
    theirs = Reference.from_pretrained(tmp_path)
    assert ours.feature_size == 128
    np.testing.assert_allclose(ours.mel_filters, theirs.mel_filters, rtol=1e-12)  # the zeroed table is not used
    assert ours.to_dict() == json.loads(theirs.to_json_string())  # custom_field kept, processor_class dropped
    x = chirps(16000, 2.0)
    assert _max_abs(ours(x, return_tensors="np")["input_features"],
                    reference_features(x, numpy_path=False, feature_size=128)["input_features"]) < TORCH_TOL
    assert WhisperFeatureExtractor.from_pretrained(tmp_path / "preprocessor_config.json").feature_size == 128
    assert WhisperFeatureExtractor.from_pretrained(tmp_path, feature_size=80).feature_size == 80
    with pytest.raises(TypeError, match="feature_sise"):
        WhisperFeatureExtractor.from_pretrained(tmp_path, feature_sise=80)
    (tmp_path / "processor_config.json").write_text(json.dumps({"feature_extractor": {**config, "feature_size": 80}}))
    assert WhisperFeatureExtractor.from_pretrained(tmp_path).feature_size == 80  # the nested config wins


def test_config_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="preprocessor_config.json"):
        WhisperFeatureExtractor.from_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"feature_extractor_type": "Wav2Vec2FeatureExtractor"}))
    with pytest.raises(ValueError, match="Wav2Vec2FeatureExtractor"):
        WhisperFeatureExtractor.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="feature_size must be a positive integer"):
        WhisperFeatureExtractor(feature_size=0)
    with pytest.raises(ValueError, match="padding_side"):
        WhisperFeatureExtractor(padding_side="middle")


# --- bad input ------------------------------------------------------------------------------------
def test_bad_input_errors():
    extractor = WhisperFeatureExtractor()
    clip = chirps(16000, 1.0)
    with pytest.raises(ValueError, match="expects audio at 16000 Hz.*sampling_rate=44100.*load_audio"):
        extractor(clip, sampling_rate=44100)
    with pytest.raises(TypeError, match="int16.*32768"):
        extractor((clip * 32767).astype(np.int16))
    bad = clip.copy()
    bad[123] = np.inf
    with pytest.raises(ValueError, match="clip 1 holds 1 NaN or infinite sample.*sample 123"):
        extractor([clip, bad])
    with pytest.raises(ValueError, match="shape \\(2, 2, 8000\\).*to_mono"):
        extractor(np.zeros((2, 2, 8000), np.float32))
    with pytest.raises(ValueError, match="clip 0 has shape \\(2, 8000\\).*mono"):
        extractor([np.zeros((2, 8000), np.float32)])
    with pytest.raises(ValueError, match="empty"):
        extractor([])
    with pytest.raises(ValueError, match="clip 0 is empty"):
        extractor(np.zeros(0, np.float32))
    with pytest.raises(TypeError, match="return_token_timestamps"):
        extractor(clip, return_token_timestamps=True)
    with pytest.raises(ValueError, match="do_not_pad.*one length"):
        extractor([clip, clip[:8000]], padding="do_not_pad")
    with pytest.raises(ValueError, match="at least 201"):
        extractor(clip[:100], padding="longest")
    with pytest.raises(ValueError, match="return_tensors"):
        extractor(clip, return_tensors="tf")
    with pytest.raises(TypeError, match="load_audio"):
        extractor("speech.wav")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    batch = [sweep(16000, 30.0), chirps(16000, 11.0)]
    extractor = WhisperFeatureExtractor(feature_size=128)
    cpu = extractor(batch, return_tensors="np", return_attention_mask=True)
    gpu = extractor(batch, device="cuda", return_attention_mask=True)
    assert gpu["input_features"].device.type == "cuda"
    assert _max_abs(gpu["input_features"].cpu().numpy(), cpu["input_features"]) < TORCH_TOL
    theirs = reference_features(batch, numpy_path=True, feature_size=128)["input_features"]
    assert _max_abs(gpu["input_features"].cpu().numpy(), theirs) < NUMPY_TOL
