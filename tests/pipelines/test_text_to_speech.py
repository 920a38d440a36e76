"""text-to-speech pipeline and CLI against transformers' pipeline, on a tiny random VITS checkpoint saved by
transformers with a real-format VitsTokenizer (MMS-TTS layout: "k" is the blank and the pad token)."""

from __future__ import annotations

import json
import logging
import warnings

import numpy as np
import pytest
import soundfile
import torch

import transformers
from hugkit import AutoModelForTextToWaveform, VitsModel, pipeline
from hugkit.cli import main
from hugkit.hub import CheckpointNotFoundError

VOCAB = {c: i for i, c in enumerate("kabcdefghijlmnopqrstuvwxyz '-")}
TEXTS = ["Hello world", "a cat", "The quick brown fox!", "hi"]


@pytest.fixture(scope="module")
def tts_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-vits")
    config = transformers.VitsConfig(
        vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2, ffn_dim=24, flow_size=8,
        spectrogram_bins=9, upsample_initial_channel=16, upsample_rates=[4, 4], upsample_kernel_sizes=[8, 8],
        resblock_kernel_sizes=[3], resblock_dilation_sizes=[[1, 3]], duration_predictor_filter_channels=12,
        prior_encoder_num_wavenet_layers=2, posterior_encoder_num_wavenet_layers=2, duration_predictor_num_flows=2,
        depth_separable_num_layers=2, sampling_rate=22050,
    )
    torch.manual_seed(0)
    transformers.VitsModel(config).eval().save_pretrained(folder)
    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "VitsTokenizer", "pad_token": "k", "unk_token": "<unk>", "add_blank": True,
        "normalize": True, "phonemize": False, "is_uroman": False, "language": "eng",
    }))
    return folder


@pytest.fixture(scope="module")
def reference(tts_folder):
    return transformers.pipeline("text-to-speech", model=str(tts_folder))


@pytest.fixture(scope="module")
def tts(tts_folder):
    return pipeline("text-to-speech", model=str(tts_folder))


def _seeded(pipe, inputs, seed=0, **kwargs):
    torch.manual_seed(seed)
    return pipe(inputs, **kwargs)


def _same(theirs, ours, trim=False):
    assert set(ours) == set(theirs) == {"audio", "sampling_rate"}
    assert ours["sampling_rate"] == theirs["sampling_rate"] == 22050
    audio = theirs["audio"][: len(ours["audio"])] if trim else theirs["audio"]
    assert isinstance(ours["audio"], np.ndarray) and ours["audio"].dtype == theirs["audio"].dtype == np.float32
    assert ours["audio"].shape == audio.shape
    assert np.abs(ours["audio"] - audio).max() <= 1e-4


def test_single_text_matches_transformers(reference, tts):
    theirs, ours = _seeded(reference, TEXTS[0]), _seeded(tts, TEXTS[0])
    _same(theirs, ours)
    assert ours["audio"].ndim == 1 and ours["audio"].shape[0] > 0  # (samples,), as transformers gives for VITS


def test_list_matches_transformers_draw_for_draw(reference, tts):
    theirs, ours = _seeded(reference, TEXTS, seed=1), _seeded(tts, TEXTS, seed=1)
    assert isinstance(ours, list) and len(ours) == len(TEXTS)
    for a, b in zip(theirs, ours):
        _same(a, b)


def test_batched_equals_transformers_batched_cut_to_length(reference, tts):
    """transformers returns each waveform at the batch's padded length; hugkit cuts each to its own length."""
    theirs, ours = _seeded(reference, TEXTS, seed=2, batch_size=2), _seeded(tts, TEXTS, seed=2, batch_size=2)
    for a, b in zip(theirs, ours):
        _same(a, b, trim=True)
    assert len({len(b["audio"]) for b in ours}) > 1
    assert all(len(b["audio"]) % 16 == 0 for b in ours)  # whole frames: frames * prod(upsample_rates)


def test_forward_params_match_transformers(reference, tts):
    options = {"forward_params": {"speaking_rate": 1.8}}
    _same(_seeded(reference, TEXTS[2], **options), _seeded(tts, TEXTS[2], **options))
    built = pipeline("text-to-speech", model=tts.model, tokenizer=tts.tokenizer, forward_params={"speaking_rate": 1.8})
    _same(_seeded(reference, TEXTS[2], **options), _seeded(built, TEXTS[2]))
    quieter = _seeded(tts, TEXTS[2], forward_params={"noise_scale": 0.0, "noise_scale_duration": 0.0})
    assert np.isfinite(quieter["audio"]).all()
    with pytest.raises(ValueError, match="forward_params"):
        tts(TEXTS[0], generate_kwargs={"do_sample": True})


def test_text_to_audio_task_and_auto_class(tts_folder, tts):
    assert tts.task == "text-to-audio"
    other = pipeline("text-to-audio", model=str(tts_folder))
    _same(_seeded(tts, "a cat"), _seeded(other, "a cat"))
    assert type(AutoModelForTextToWaveform.from_pretrained(tts_folder)) is VitsModel


def test_soundfile_round_trip_and_playable_array(tts, tmp_path):
    speech = _seeded(tts, TEXTS[0])
    audio = speech["audio"]
    # IPython.display.Audio takes a 1-D (mono) or 2-D (channels, samples) float array with its rate.
    assert audio.dtype == np.float32 and audio.ndim in (1, 2) and np.isfinite(audio).all() and np.abs(audio).max() <= 1
    exact, pcm = tmp_path / "exact.wav", tmp_path / "pcm.wav"
    soundfile.write(exact, audio.T, speech["sampling_rate"], subtype="FLOAT")
    soundfile.write(pcm, audio.T, speech["sampling_rate"])  # default 16-bit PCM
    read, rate = soundfile.read(exact, dtype="float32")
    assert rate == speech["sampling_rate"] and np.array_equal(read, audio)
    read, rate = soundfile.read(pcm, dtype="float32")
    assert rate == speech["sampling_rate"] and read.shape == audio.shape
    assert np.abs(read - audio).max() <= 1 / 32768 + 1e-6


def test_no_warnings_in_normal_use(tts_folder, caplog):
    with caplog.at_level(logging.WARNING), warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe = pipeline("text-to-speech", model=str(tts_folder))
        pipe(TEXTS)
        pipe(TEXTS[0], batch_size=2)
    assert not [r for r in caplog.records if r.name.startswith("hugkit")]


def test_bad_inputs(tts, tmp_path):
    with pytest.raises(ValueError, match="empty text"):
        tts("")
    with pytest.raises(ValueError, match="empty text"):
        tts(["fine", "   "])
    with pytest.raises(TypeError, match="string"):
        tts(42)
    with pytest.raises(TypeError, match="string"):
        tts(["fine", 5])
    with pytest.raises(ValueError, match="vocabulary"):
        tts("!!! ???")
    with pytest.raises(TypeError, match="dict"):
        tts("hi", forward_params=1.5)
    with pytest.raises(TypeError, match="unexpected keyword"):
        tts("hi", speaking_rate=2)


def test_non_vits_models_are_refused(tmp_path):
    config = transformers.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=20, max_position_embeddings=32)
    transformers.BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="text-to-waveform") as info:
        pipeline("text-to-speech", model=str(tmp_path))
    assert "'bert'" in str(info.value)
    from hugkit import AutoModel
    from hugkit.pipelines.text_to_speech import TextToAudioPipeline

    bert = AutoModel.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="VITS"):
        TextToAudioPipeline(model=bert, tokenizer=None, task="text-to-speech")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bark"}))
    with pytest.raises(ValueError, match="bark"):
        pipeline("text-to-speech", model=str(tmp_path))


def test_offline_default(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(CheckpointNotFoundError, match="facebook/mms-tts-eng"):
        pipeline("text-to-speech")


def test_cached_mms_tts_is_the_default(monkeypatch, tmp_path, tts_folder):
    """facebook/mms-tts-eng in the local HF cache is used when no model is given (never downloaded)."""
    snapshot = tmp_path / "models--facebook--mms-tts-eng" / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for path in tts_folder.iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (tmp_path / "models--facebook--mms-tts-eng" / "refs").mkdir()
    (tmp_path / "models--facebook--mms-tts-eng" / "refs" / "main").write_text("abc123")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    pipe = pipeline("text-to-speech")
    assert pipe("hi")["sampling_rate"] == 22050


def test_cli_writes_a_readable_wav(tts, tts_folder, tmp_path, capsys):
    out = tmp_path / "hello.wav"
    assert main(["text-to-speech", TEXTS[0], "-o", str(out), "--model", str(tts_folder), "--seed", "0"]) == 0
    line = json.loads(capsys.readouterr().out.strip())
    assert line["audio"] == str(out) and line["sampling_rate"] == 22050
    audio, rate = soundfile.read(out, dtype="float32")
    expected = _seeded(tts, TEXTS[0], seed=0)["audio"]
    assert rate == 22050 and audio.shape == expected.shape
    assert np.abs(audio - expected).max() <= 1 / 32768 + 1e-6
    assert line["seconds"] == round(len(expected) / 22050, 3)


def test_cli_errors(monkeypatch, tmp_path, tts_folder, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    assert main(["text-to-speech", "hello", "-o", str(tmp_path / "x.wav")]) == 1
    error = capsys.readouterr().err
    assert "huggingface-cli download facebook/mms-tts-eng" in error and "--model" in error
    assert main(["text-to-speech", "!!!", "-o", str(tmp_path / "x.wav"), "--model", str(tts_folder)]) == 1
    assert "vocabulary" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()
