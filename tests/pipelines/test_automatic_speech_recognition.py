"""pipeline("automatic-speech-recognition"): the built-in Whisper tiny.en, offline, against transformers' pipeline on
the same folder and audio (text, segment and word chunks, chunked long audio with strides, long-form), the numbers
fed to the model, streaming (stream=True, asr.stream), bounded memory on a 2-hour file, the CLI, and bad input.

Both pipelines default to 5 beams (transformers' default); most comparisons run greedy (num_beams=1) on both sides,
which is faster, and one checks the defaults.
"""

from __future__ import annotations

import io
import json
import logging
import math
import sys
import tracemalloc
import types
import warnings
from contextlib import redirect_stdout

import numpy as np
import pytest
import soundfile as sf
import torch

from hugkit.audio.io import AudioDecodeError, FFmpegNotFoundError
from tests.audio.signals import ffmpeg_convert, pipeline_inputs, require_tool
from tests.audio.speech import CORPUS, RATE, SENTENCES, builtin_folder, spoken, spoken_file, use_builtin, word_errors, \
    words

GREEDY = {"generate_kwargs": {"num_beams": 1}}


@pytest.fixture(scope="module")
def asr():
    with pytest.MonkeyPatch.context() as patch:
        use_builtin(patch)
        from hugkit import pipeline

        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no warnings in normal use
            yield pipeline("automatic-speech-recognition")


@pytest.fixture(scope="module")
def reference():
    import transformers

    return transformers.pipeline("automatic-speech-recognition", model=str(builtin_folder()))


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> str:
    """About 50 s of speech (the ten sentences, 0.4 s apart) as a 16 kHz wav."""
    gap = np.zeros(int(0.4 * RATE), dtype=np.float32)
    samples = np.concatenate([part for sentence in CORPUS for part in (spoken(sentence), gap)])
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    return str(path)


@pytest.fixture(scope="module")
def medium_file(tmp_path_factory) -> str:
    """About 17 s: three sentences."""
    gap = np.zeros(int(0.4 * RATE), dtype=np.float32)
    samples = np.concatenate([part for sentence in SENTENCES[:3] for part in (spoken(sentence), gap)])
    path = tmp_path_factory.mktemp("medium") / "medium.wav"
    sf.write(path, samples, RATE, subtype="FLOAT")
    return str(path)


# ------------------------------------------------------------------------------------------ parity


def test_builtin_short_input_equals_transformers(asr, reference):
    assert type(asr.model).__module__ == "hugkit.models.whisper"
    path = spoken_file(SENTENCES[1])
    ours = asr(path, **GREEDY)
    assert ours == reference(path, **GREEDY) == {"text": " I would like to book a table for two people tomorrow evening."}
    stamped = asr(path, return_timestamps=True, **GREEDY)
    assert stamped == reference(path, return_timestamps=True, **GREEDY)
    (chunk,) = stamped["chunks"]
    assert chunk["timestamp"][0] == 0.0 and 3.0 < chunk["timestamp"][1] < 5.0 and chunk["text"] == ours["text"]
    with_language = asr(path, return_language=True, **GREEDY)
    assert with_language == reference(path, return_language=True, **GREEDY)
    assert with_language["chunks"] == [{"language": None, "text": ours["text"]}]  # an English-only model


def test_defaults_equal_transformers(asr, reference):
    """Without generation arguments both pipelines use transformers' defaults (5 beams): the same output, segments
    included, from hugkit's model and from transformers' model inside hugkit's pipeline."""
    from hugkit import AutoTokenizer
    from hugkit.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

    folder = builtin_folder()
    path = spoken_file(SENTENCES[0])
    result = asr(path, return_timestamps=True)
    assert result == reference(path, return_timestamps=True)
    around_theirs = AutomaticSpeechRecognitionPipeline(reference.model, AutoTokenizer.from_pretrained(folder))
    assert around_theirs(path, return_timestamps=True) == result
    assert "ask her to bring" in result["text"]  # the beams' reading (greedy says "ask for to bring")


def test_every_input_kind_gives_the_same_text(asr):
    samples = np.array(spoken(SENTENCES[3]))
    path = spoken_file(SENTENCES[3])
    with open(path, "rb") as handle:
        data = handle.read()
    inputs = [path, data, samples, torch.from_numpy(samples), {"array": samples, "sampling_rate": RATE},
              {"raw": samples, "sampling_rate": RATE, "id": 7}, {"audio": {"array": samples, "sampling_rate": RATE}}]
    results = asr(inputs, batch_size=4)
    expected = " We are going to the park this afternoon to play football."
    assert [r["text"] for r in results] == [expected] * len(inputs)
    assert results[5]["id"] == [7]  # other dict keys come back, as in transformers
    lazy = asr(iter([samples]))
    assert not isinstance(lazy, list) and [r["text"] for r in lazy] == [expected]


def test_chunked_with_stride_equals_transformers(asr, reference, medium_file):
    for options in ({"chunk_length_s": 8, "batch_size": 2, "return_timestamps": True},
                    {"chunk_length_s": 6, "stride_length_s": [2, 1]}):
        ours = asr(medium_file, **options, **GREEDY)
        assert ours == reference(medium_file, **options, **GREEDY), options
    assert len(words(ours["text"])) >= 30


def test_long_form_equals_transformers(asr, reference, long_file):
    ours = asr(long_file, return_timestamps=True, **GREEDY)
    assert ours == reference(long_file, return_timestamps=True, **GREEDY)
    assert ours["chunks"][-1]["timestamp"][1] > 40 and len(words(ours["text"])) > 80


def test_word_timestamps_equal_transformers(asr, reference):
    path = spoken_file(SENTENCES[4])
    ours = asr(path, return_timestamps="word", **GREEDY)
    assert ours == reference(path, return_timestamps="word", **GREEDY)
    assert [chunk["text"] for chunk in ours["chunks"]][:3] == [" Can", " you", " tell"]
    starts = [chunk["timestamp"][0] for chunk in ours["chunks"]]
    assert starts == sorted(starts)


def test_features_fed_to_the_model_equal_transformers(asr, reference):
    samples = np.array(spoken(SENTENCES[0]))
    for source in (samples, {"array": samples, "sampling_rate": RATE}, spoken_file(SENTENCES[0])):  # file: ffmpeg there
        (ours,) = list(asr.preprocess(source))
        theirs = pipeline_inputs(source if not isinstance(source, dict) else dict(source))
        np.testing.assert_allclose(ours["input_features"].numpy(), theirs["input_features"], atol=1e-4)
        assert np.array_equal(ours["attention_mask"].numpy(), theirs["attention_mask"])

    # Chunked: the same windows, strides and features as transformers' own preprocess.
    long = np.concatenate([samples, samples, samples])
    ours = list(asr.preprocess(long, chunk_length_s=4, stride_length_s=(1, 0.5)))
    theirs = list(reference.preprocess(long, chunk_length_s=4, stride_length_s=(1, 0.5)))
    assert [o["stride"] for o in ours] == [t["stride"] for t in theirs] and len(ours) > 3
    assert [o["is_last"] for o in ours] == [t["is_last"] for t in theirs]
    for o, t in zip(ours, theirs):
        np.testing.assert_allclose(o["input_features"].numpy(), t["input_features"].numpy(), atol=1e-4)


# ------------------------------------------------------------------------------------------ streaming


def test_stream_true_yields_pieces_of_the_text(asr, long_file):
    path = spoken_file(SENTENCES[0])
    pieces = list(asr(path, stream=True))
    assert len(pieces) > 5 and "".join(pieces) == asr(path, **GREEDY)["text"]  # streaming decodes greedily
    with asr(path, stream=True) as stream:
        first = next(stream)
    assert first and stream.result is None  # closed early: generation stopped

    long_pieces = asr(long_file, stream=True)
    assert "".join(long_pieces) == asr(long_file, chunk_length_s=30, **GREEDY)["text"] == long_pieces.result["text"]


def test_live_stream_commits_agreed_text(asr):
    samples = np.concatenate([spoken(SENTENCES[1]), np.zeros(RATE // 2, np.float32), spoken(SENTENCES[3])])
    chunks = (samples[i : i + 8000] for i in range(0, len(samples), 8000))  # half-second pieces, as a microphone
    updates = list(asr.stream(chunks, step_s=2.0))
    assert len(updates) == len(samples) // (2 * RATE) + 1  # one per 2 s of audio, and the final one
    for before, after in zip(updates, updates[1:]):
        assert after.stable.startswith(before.stable)  # committed text never changes
        assert after.audio_end >= before.audio_end
    assert any(u.stable and u.unstable for u in updates[:-1])  # tentative text while audio is still arriving
    final = updates[-1]
    assert final.final and final.unstable == "" and final.text == final.stable
    whole = asr(samples)["text"]
    assert word_errors(words(whole), words(final.text)) <= 3, (final.text, whole)
    assert 0 < final.stable_until <= final.audio_end + 0.5

    # Dict chunks at another rate are resampled by one resampler for the whole stream.
    import soxr

    high = soxr.resample(samples, RATE, 44100).astype(np.float32)
    dict_chunks = ({"array": high[i : i + 22050], "sampling_rate": 44100} for i in range(0, len(high), 22050))
    last = list(asr.stream(dict_chunks, step_s=2.0))[-1]
    assert word_errors(words(final.text), words(last.text)) <= 2, (last.text, final.text)
    with pytest.raises(ValueError, match="stream started at 44100 Hz"):
        list(asr.stream([{"array": high[:44100], "sampling_rate": 44100},
                         {"array": samples[:16000], "sampling_rate": 16000}], step_s=1.0))
    with pytest.raises(TypeError, match="np.frombuffer"):
        list(asr.stream([b"\x00\x01" * 100]))


# ------------------------------------------------------------------------------------------ long files, memory


class _StubWhisper(torch.nn.Module):
    """Enough of a Whisper model for the pipeline's plumbing: generate() returns one word per window."""

    def __init__(self, folder):
        super().__init__()
        from hugkit.generation.config import GenerationConfig

        self.config = types.SimpleNamespace(model_type="whisper", max_source_positions=1500,
                                            _name_or_path=str(folder))
        self.generation_config = GenerationConfig(max_length=448)
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.calls = 0

    @property
    def device(self):
        return self.weight.device

    @property
    def dtype(self):
        return self.weight.dtype

    def generate(self, input_features, attention_mask=None, **kwargs):
        self.calls += input_features.shape[0]
        return torch.tensor([[50362, 23748, 50256]] * input_features.shape[0])  # " hello"


def test_two_hour_file_is_read_in_blocks(tmp_path):
    from hugkit import AutoTokenizer
    from hugkit.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

    folder = builtin_folder()
    path = tmp_path / "two-hours.wav"
    second = (0.01 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    with sf.SoundFile(path, "w", samplerate=16000, channels=1, subtype="PCM_16") as out:
        for _ in range(2 * 3600 // 60):
            out.write(np.tile(second, 60))
    model = _StubWhisper(folder)
    pipe = AutomaticSpeechRecognitionPipeline(model, AutoTokenizer.from_pretrained(folder))
    tracemalloc.start()
    try:
        result = pipe(str(path), chunk_length_s=30, batch_size=4)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        path.unlink()  # 230 MB
    windows = math.ceil((2 * 3600 - 10) / 20)  # 30-s windows every 20 s (5-s strides)
    assert model.calls == windows
    assert result["text"].startswith(" hello hello") and len(result["text"].split()) >= windows // 2
    # 2 hours at 16 kHz is 460 MB of float32; the pipeline holds a few windows and a batch of features (measured:
    # 14 MiB of numpy memory at the peak; torch tensors are not traced, a batch of features is 4 MB).
    logging.getLogger(__name__).info("2-hour file: peak traced memory %.1f MiB", peak / 2**20)
    assert peak < 64 * 2**20, f"peak traced memory {peak / 2**20:.0f} MiB"


def test_chunking_of_blocks_equals_transformers_chunk_iter():
    from transformers.pipelines.automatic_speech_recognition import chunk_iter

    from hugkit.pipelines.automatic_speech_recognition import chunk_samples

    rng = np.random.default_rng(0)

    class Featurize:  # stands in for the feature extractor: hands the window back
        sampling_rate = 16000

        def __call__(self, x, **kwargs):
            return {"samples": x}
    for total, chunk, left, right, block in [(1000, 300, 50, 50, 64), (1000, 300, 0, 100, 1000), (999, 100, 10, 20, 7),
                                             (300, 300, 50, 50, 100), (301, 300, 50, 50, 1), (50, 300, 50, 50, 10)]:
        samples = rng.standard_normal(total).astype(np.float32)
        blocks = (samples[i : i + block] for i in range(0, total, block))
        ours = [(window.copy(), stride, last) for window, stride, last in chunk_samples(blocks, chunk, left, right)]
        theirs = list(chunk_iter(samples, Featurize(), chunk, left, right))
        assert [(s, l) for _, s, l in ours] == [(t["stride"], t["is_last"]) for t in theirs], (total, chunk, block)
        for (window, _, _), t in zip(ours, theirs):
            assert np.array_equal(window, t["samples"])


# ------------------------------------------------------------------------------------------ CLI


def test_cli_prints_text_and_timestamped_lines(asr, monkeypatch):
    from hugkit.cli import main

    use_builtin(monkeypatch)
    path = spoken_file(SENTENCES[1])
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["automatic-speech-recognition", path, "--timestamps"]) == 0
        assert main(["automatic-speech-recognition", path, path, "--json"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[   0.00 --> ") and lines[0].endswith("] I would like to book a table for two people "
                                                                      "tomorrow evening.")
    assert json.loads(lines[1]) == {"text": " I would like to book a table for two people tomorrow evening."}
    assert len(lines) == 3
    err = io.StringIO()
    monkeypatch.setattr(sys, "stderr", err)
    assert main(["automatic-speech-recognition", str(path) + ".missing"]) == 1
    assert "does not exist" in err.getvalue()


# ------------------------------------------------------------------------------------------ bad input


def test_silence_gives_at_most_what_whisper_allows(asr, reference):
    silence = np.zeros(5 * RATE, dtype=np.float32)
    ours = asr(silence, **GREEDY)
    assert ours == reference(silence, **GREEDY)
    assert len(words(ours["text"])) <= 1  # tiny.en says " you" to digital silence, as transformers' does


def test_bad_input_is_explained(asr, tmp_path, monkeypatch):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match="empty.wav is empty"):
        asr(str(empty))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"this is not audio at all" * 100)
    with pytest.raises(AudioDecodeError, match="garbage.wav"):
        asr(str(garbage))
    with pytest.raises(FileNotFoundError, match="nowhere.wav does not exist"):
        asr(str(tmp_path / "nowhere.wav"))

    # A format only ffmpeg reads, with ffmpeg missing.
    require_tool("ffmpeg")
    m4a = ffmpeg_convert(__import__("pathlib").Path(spoken_file(SENTENCES[0])), tmp_path / "speech.m4a")
    import hugkit.audio.ffmpeg

    monkeypatch.setattr(hugkit.audio.ffmpeg, "ffmpeg_path", lambda: None)
    with pytest.raises(FFmpegNotFoundError, match="speech.m4a.*need ffmpeg, which is not installed"):
        asr(str(m4a))

    samples = np.array(spoken(SENTENCES[0]))
    with pytest.raises(ValueError, match="no 'sampling_rate'"):
        asr({"array": samples})
    with pytest.raises(TypeError, match="list of numbers"):
        asr([0.0, 0.1, 0.2])
    with pytest.raises(TypeError, match="found int"):
        asr(3)
    with pytest.raises(ValueError, match="'char' timestamps"):
        asr(samples, return_timestamps="char")
    with pytest.raises(ValueError, match="English-only Whisper model"):
        asr(samples, generate_kwargs={"language": "fr"})
    with pytest.raises(ValueError, match="must be longer than the two strides"):
        asr(samples, chunk_length_s=2, stride_length_s=1)
    with pytest.raises(ValueError, match="NaN"):
        asr(np.full(1000, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="num_beams"):
        asr(samples, stream=True, num_beams=3)
    with pytest.raises(ValueError, match="one input at a time"):
        asr([samples, samples], stream=True)
