"""hugkit.audio.io: every input kind, decoders, downmix, resampling and bad input, against transformers' loaders.

transformers' ``audio_utils.load_audio(..., backend="soundfile")`` decodes with soundfile and resamples with soxr HQ,
as hugkit does: there the samples must be identical. Its ASR pipeline decodes files with ffmpeg; where nothing is
resampled the samples must match that too.
"""

from __future__ import annotations

import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from hugkit.audio import io as audio_io
from hugkit.audio.io import AudioDecodeError, FFmpegNotFoundError, load_audio, resample, stream_audio, to_mono

from .signals import chirps, ffmpeg_convert, noise, require_tool, silence, stereo, sweep, tone

RATES = [8000, 16000, 22050, 44100, 48000]
FORMATS = [("wav", "PCM_16"), ("wav", "FLOAT"), ("flac", "PCM_24"), ("ogg", "VORBIS")]


def _stereo_clip(rate: int, seconds: float = 1.5) -> np.ndarray:
    left = sweep(rate, seconds, amplitude=0.4) + noise(rate, seconds, 0.02, seed=1)
    right = chirps(rate, seconds) + silence(rate, seconds)
    return stereo(left, right)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[int, str, str], str]:
    folder = tmp_path_factory.mktemp("audio")
    made = {}
    for rate in RATES:
        clip = _stereo_clip(rate)
        for ext, subtype in FORMATS:
            path = folder / f"clip_{rate}_{subtype}.{ext}"
            sf.write(path, clip, rate, subtype=subtype)
            made[rate, ext, subtype] = str(path)
    return made


# --- files, against transformers' soundfile + soxr loader (bit for bit) ---------------------------
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("ext,subtype", FORMATS)
def test_file_equals_transformers_load_audio(files, rate, ext, subtype):
    from transformers.audio_utils import load_audio as reference

    path = files[rate, ext, subtype]
    ours = load_audio(path)
    theirs = reference(path, sampling_rate=16000, backend="soundfile")
    assert ours.dtype == np.float32 and ours.ndim == 1 and ours.flags.c_contiguous
    assert ours.shape == theirs.shape == (int(np.ceil(sf.info(path).frames * 16000 / rate)),)
    np.testing.assert_array_equal(ours, theirs)
    # The same file as bytes, and streamed in small blocks, gives the same samples.
    with open(path, "rb") as handle:
        np.testing.assert_array_equal(load_audio(handle.read()), ours)
    np.testing.assert_array_equal(np.concatenate(list(stream_audio(path, block_seconds=0.37))), ours)


def test_downmix_is_the_channel_mean_and_resampling_is_soxr_hq(files):
    path = files[44100, "wav", "FLOAT"]
    raw, rate = sf.read(path, dtype="float32")
    expected = soxr.resample(raw.mean(axis=1), rate, 16000, quality="HQ")
    expected = np.pad(expected, (0, int(np.ceil(len(raw) * 16000 / rate)) - len(expected)))
    np.testing.assert_array_equal(load_audio(path), expected)
    both = load_audio(path, mono=False)
    assert both.shape == (2, len(expected))
    np.testing.assert_allclose(both.mean(axis=0), expected, atol=1e-6)


def test_target_rate_other_than_16k(files):
    path = files[48000, "flac", "PCM_24"]
    out = load_audio(path, target_rate=24000)
    raw, _ = sf.read(path, dtype="float32")
    assert out.shape == (len(raw) // 2,)
    np.testing.assert_array_equal(out, resample(raw.mean(axis=1), 48000, 24000))


# --- files, against transformers' ASR pipeline (ffmpeg) -------------------------------------------
def test_16k_mono_wav_equals_pipeline_ffmpeg_read(tmp_path):
    require_tool("ffmpeg")
    from transformers.pipelines.audio_utils import ffmpeg_read

    path = tmp_path / "mono16k.wav"
    sf.write(path, chirps(16000, 2.0), 16000, subtype="PCM_16")
    payload = path.read_bytes()
    np.testing.assert_array_equal(load_audio(path), ffmpeg_read(payload, 16000))
    np.testing.assert_array_equal(load_audio(payload), ffmpeg_read(payload, 16000))


def test_mp3_goes_through_ffmpeg(tmp_path):
    require_tool("ffmpeg")
    from transformers.pipelines.audio_utils import ffmpeg_read

    wav = tmp_path / "speechlike.wav"
    clip = chirps(16000, 3.0) + sweep(16000, 3.0, amplitude=0.1)
    sf.write(wav, clip, 16000)
    mp3 = ffmpeg_convert(wav, tmp_path / "speechlike.mp3", "-b:a", "64k")
    ours = load_audio(mp3)
    # ffmpeg trims the encoder's padding when it reads the file (gapless): the original length comes back.
    assert ours.shape == clip.shape
    # The pipeline pipes the bytes into ffmpeg, which keeps the decoder's tail padding; the shared part is equal.
    theirs = ffmpeg_read(mp3.read_bytes(), 16000)
    assert len(theirs) >= len(ours)
    np.testing.assert_array_equal(ours, theirs[: len(ours)])
    assert np.corrcoef(ours, clip)[0, 1] > 0.98  # and it is the signal that went in
    np.testing.assert_array_equal(load_audio(mp3.read_bytes()), ours)


def test_mp3_at_44k_is_decoded_then_resampled(tmp_path):
    require_tool("ffmpeg")
    wav = tmp_path / "tone44.wav"
    clip = stereo(tone(44100, 2.0, 440.0), tone(44100, 2.0, 660.0))
    sf.write(wav, clip, 44100)
    mp3 = ffmpeg_convert(wav, tmp_path / "tone44.mp3", "-b:a", "128k")
    ours = load_audio(mp3)
    expected = resample(clip.mean(axis=1), 44100, 16000)
    assert ours.shape == expected.shape
    assert np.corrcoef(ours, expected)[0, 1] > 0.999
    assert list(stream_audio(mp3, block_seconds=0.5))[0].shape[0] < len(ours)  # really streamed in blocks
    np.testing.assert_array_equal(np.concatenate(list(stream_audio(mp3, block_seconds=0.5))), ours)


def test_m4a_needs_ffmpeg(tmp_path, monkeypatch):
    require_tool("ffmpeg")
    wav = tmp_path / "clip.wav"
    sf.write(wav, chirps(16000, 1.0), 16000)
    m4a = ffmpeg_convert(wav, tmp_path / "clip.m4a", "-c:a", "aac", "-b:a", "96k")
    decoded = load_audio(m4a)
    assert abs(len(decoded) - 16000) < 2048 and np.abs(decoded).max() > 0.05  # AAC keeps a priming tail
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no ffmpeg on PATH any more
    monkeypatch.delenv("HUGKIT_FFMPEG", raising=False)
    assert audio_io.ffmpeg_path() is None
    with pytest.raises(FFmpegNotFoundError, match=r"(?s)clip\.m4a.*ffmpeg.*apt-get install -y ffmpeg"):
        load_audio(m4a)
    with pytest.raises(FFmpegNotFoundError, match="audio bytes.*ffmpeg"):
        load_audio(m4a.read_bytes())


# --- arrays, tensors, dicts -----------------------------------------------------------------------
def test_array_at_target_rate_is_passed_through_unchanged():
    clip = noise(16000, 1.0)
    out = load_audio(clip)  # no sampling_rate: taken to be 16 kHz, as transformers' pipeline takes it
    assert out is clip or np.shares_memory(out, clip)
    np.testing.assert_array_equal(load_audio(torch.from_numpy(clip)), clip)
    np.testing.assert_array_equal(load_audio(clip.astype(np.float64)), clip)
    np.testing.assert_array_equal(load_audio(clip.tolist()), clip)
    np.testing.assert_array_equal(load_audio(torch.from_numpy(clip).to(torch.bfloat16)),
                                  torch.from_numpy(clip).to(torch.bfloat16).float().numpy())


def test_array_is_resampled_with_its_rate():
    clip = sweep(44100, 1.0)
    out = load_audio(clip, sampling_rate=44100)
    expected = soxr.resample(clip, 44100, 16000, quality="HQ")
    assert out.shape == (16000,)
    np.testing.assert_array_equal(out[: len(expected)], expected)
    np.testing.assert_array_equal(np.concatenate(list(stream_audio(clip, 44100, block_seconds=0.1))), out)


def test_stereo_layouts():
    left, right = tone(16000, 0.5, 300.0), noise(16000, 0.5)
    mean = (left + right) / 2
    channels_first = np.stack([left, right])
    np.testing.assert_array_equal(load_audio(channels_first), mean)  # the pipeline's (channels, samples)
    np.testing.assert_array_equal(load_audio(channels_first.T.copy()), mean)  # soundfile's (samples, channels)
    np.testing.assert_array_equal(to_mono(torch.from_numpy(channels_first)), mean)
    six = np.stack([left] * 3 + [right] * 3)
    np.testing.assert_allclose(load_audio(six), mean, atol=1e-7)
    kept = load_audio(channels_first, mono=False)
    assert kept.shape == (2, 8000)
    with pytest.raises(ValueError, match="channel axis"):
        load_audio(np.zeros((100, 200), np.float32))


def test_integer_pcm_is_scaled():
    pcm = (np.arange(-32768, 32768, 64)).astype(np.int16)
    np.testing.assert_array_equal(load_audio(pcm), pcm.astype(np.float32) / 32768)
    np.testing.assert_array_equal(load_audio(np.array([0, 128, 255], np.uint8)), [-1.0, 0.0, 127 / 128])
    with pytest.raises(TypeError, match="int64"):
        load_audio(np.arange(10))


def test_datasets_and_pipeline_dicts(tmp_path):
    clip = chirps(22050, 1.0)
    expected = resample(clip, 22050, 16000)
    np.testing.assert_array_equal(load_audio({"array": clip, "sampling_rate": 22050, "path": "x.wav"}), expected)
    np.testing.assert_array_equal(load_audio({"raw": torch.from_numpy(clip), "sampling_rate": 22050}), expected)
    path = tmp_path / "from_dict.flac"
    sf.write(path, clip, 22050, subtype="PCM_24")
    from_file = load_audio(path)
    np.testing.assert_array_equal(load_audio({"bytes": path.read_bytes(), "path": "from_dict.flac"}), from_file)
    np.testing.assert_array_equal(load_audio({"bytes": None, "path": str(path)}), from_file)
    with pytest.raises(ValueError, match="no 'sampling_rate'"):
        load_audio({"array": clip})
    with pytest.raises(ValueError, match="sampling_rate=22050.*sampling_rate=16000"):
        load_audio({"array": clip, "sampling_rate": 22050}, sampling_rate=16000)
    with pytest.raises(ValueError, match="needs 'array'"):
        load_audio({"audio": clip})


def test_real_speech_from_espeak(tmp_path):
    from transformers.audio_utils import load_audio as reference

    path = tmp_path / "speech.wav"
    subprocess.run([require_tool("espeak-ng"), "-w", str(path), "Audio in, numbers out."], check=True)
    assert sf.info(path).samplerate == 22050
    np.testing.assert_array_equal(load_audio(path), reference(str(path), sampling_rate=16000, backend="soundfile"))


# --- bad input ------------------------------------------------------------------------------------
def test_missing_empty_and_corrupted_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.wav does not exist"):
        load_audio(tmp_path / "nowhere.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(AudioDecodeError, match=r"empty\.wav is empty \(0 bytes\)"):
        load_audio(empty)
    with pytest.raises(AudioDecodeError, match="empty"):
        load_audio(b"")
    no_frames = tmp_path / "no_frames.wav"
    sf.write(no_frames, np.zeros(0, np.float32), 16000)
    with pytest.raises(AudioDecodeError, match=r"no_frames\.wav holds no audio samples"):
        load_audio(no_frames)
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(np.random.default_rng(0).bytes(4096))
    # With ffmpeg both decoders are tried and both are quoted; without it the error says to install it.
    with pytest.raises(AudioDecodeError, match=r"garbage\.wav"):
        load_audio(garbage)
    with pytest.raises(IsADirectoryError):
        load_audio(tmp_path)
    with pytest.raises(ValueError, match="URL"):
        load_audio("https://example.com/a.wav")


def test_garbage_with_ffmpeg_quotes_both_decoders(tmp_path):
    require_tool("ffmpeg")
    garbage = tmp_path / "garbage.ogg"
    garbage.write_bytes(b"not audio at all " * 100)
    with pytest.raises(AudioDecodeError, match=r"(?s)garbage\.ogg.*soundfile said.*ffmpeg said"):
        load_audio(garbage)


def test_file_rate_conflict(files):
    with pytest.raises(ValueError, match="recorded at 44100 Hz, but sampling_rate=16000"):
        load_audio(files[44100, "wav", "PCM_16"], sampling_rate=16000)


def test_nan_and_bad_shapes(tmp_path):
    clip = noise(16000, 1.0)
    clip[4000] = np.nan
    with pytest.raises(ValueError, match=r"NaN or infinite samples .*sample 4000, 0\.250 s in"):
        load_audio(clip)
    float_wav = tmp_path / "nan.wav"
    sf.write(float_wav, clip, 16000, subtype="FLOAT")
    with pytest.raises(ValueError, match=r"nan\.wav holds NaN"):
        load_audio(float_wav)
    with pytest.raises(ValueError, match="3 dimensions"):
        load_audio(np.zeros((2, 2, 100), np.float32))
    with pytest.raises(ValueError, match="empty"):
        load_audio(np.zeros(0, np.float32))
    with pytest.raises(ValueError, match="positive number"):
        load_audio(clip, sampling_rate=0)
    with pytest.raises(TypeError, match="file path"):
        load_audio(object())


def test_missing_extra_is_named(files, monkeypatch):
    monkeypatch.setitem(sys.modules, "soundfile", None)
    with pytest.raises(ImportError, match=r"pip install 'hugkit\[audio\]'"):
        load_audio(files[16000, "wav", "PCM_16"])
    monkeypatch.setitem(sys.modules, "soxr", None)
    with pytest.raises(ImportError, match=r"soxr.*pip install 'hugkit\[audio\]'"):
        load_audio(sweep(44100, 0.1), sampling_rate=44100)
    load_audio(sweep(16000, 0.1))  # at the target rate neither package is needed


# --- long files: blocks and bounded memory --------------------------------------------------------
def _write_long(path, rate: int, seconds: int) -> None:
    """A long int16 file written block by block (a 1-s tone pattern that changes every minute)."""
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as handle:
        base = tone(rate, 1.0, 200.0, 0.5)
        for minute in range(seconds // 60):
            handle.write(np.tile(base * (0.2 + 0.8 * (minute % 5) / 4), 60))


def test_two_hour_file_streams_in_bounded_memory(tmp_path):
    path = tmp_path / "two_hours.wav"
    _write_long(path, 8000, 2 * 3600)
    size = path.stat().st_size
    assert size > 100e6  # 115 MB of int16 at 8 kHz
    tracemalloc.start()
    try:
        total, peak_block, loudest = 0, 0, 0.0
        for block in stream_audio(path, target_rate=16000, block_seconds=60):
            total += len(block)
            peak_block = max(peak_block, len(block))
            loudest = max(loudest, float(np.abs(block[::97]).max()))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == 2 * 3600 * 16000
    assert peak_block <= 61 * 16000
    assert 0.45 < loudest < 0.55
    # A 2-hour file at 16 kHz is 460 MB of float32; streaming held a few 60-s blocks (each 3.8 MB at 16 kHz).
    assert peak < 40e6, f"streaming peaked at {peak / 1e6:.1f} MB"


def test_load_audio_holds_its_output_and_a_block(tmp_path):
    path = tmp_path / "ten_minutes.wav"
    _write_long(path, 48000, 600)
    tracemalloc.start()
    try:
        out = load_audio(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out.shape == (600 * 16000,)
    output_bytes = out.nbytes  # 38.4 MB; the source at 48 kHz as float32 would be 115 MB
    assert peak < output_bytes + 4 * audio_io.BLOCK_FRAMES * 4, f"peak {peak / 1e6:.1f} MB for {output_bytes / 1e6:.1f} MB"
