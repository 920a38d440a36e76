"""Audio input: files, bytes, arrays and ``datasets`` audio dicts to float32 mono samples at the model's rate.

``load_audio(source, sampling_rate=None, target_rate=16000, mono=True)`` accepts

- a path (``str`` or ``os.PathLike``): wav, flac, ogg/vorbis, opus and the other formats libsndfile reads go through
  ``soundfile``; mp3, and anything ``soundfile`` does not recognise (m4a/aac, webm, mp4, ...), through ``ffmpeg``
  when it is installed (mp3 falls back to libsndfile's decoder when it is not);
- ``bytes`` holding an encoded file (the same decoders);
- a numpy array or torch tensor of samples, with ``sampling_rate`` or, as transformers' ASR pipeline does, assumed to
  be at ``target_rate`` already when it is not given;
- a dict: ``{"array" | "raw": samples, "sampling_rate": rate}`` (what ``datasets`` and transformers' pipeline use),
  or ``{"bytes": ..., "path": ...}`` (``datasets.Audio(decode=False)``), or a torchcodec ``AudioDecoder``.

It returns a C-contiguous float32 array, ``(samples,)`` (``mono=True``) or ``(channels, samples)``.
``stream_audio`` yields the same samples block by block: a 2-hour file is read, downmixed and resampled in blocks,
so memory stays at a few blocks (``load_audio`` holds only its output and a block or two besides).

Conventions, and how they compare with transformers:

- Downmix: the mean of the channels (librosa's and transformers' ``audio_utils.load_audio``'s rule, and the ASR
  pipeline's for arrays). A 2-D array is read ``(channels, samples)`` when its first axis has at most 2 entries, as
  the pipeline reads it; hugkit also takes ``(samples, channels)`` (what ``soundfile.read`` and ``scipy`` return,
  which the pipeline refuses) and more channels when one axis is clearly the short one.
- Resampling: soxr at its default "HQ" quality, chosen because it is a real band-limited resampler (measured at
  48 -> 16 kHz: flat to 7.3 kHz, -3 dB at 7.6 kHz, anything from 8.1 kHz up aliased back at below -135 dB) that
  runs thousands of times faster than real time on one core, streams with output identical to a one-shot call
  (so long files resample in blocks), and is what transformers' own
  ``audio_utils.load_audio`` (soundfile backend) and librosa use: hugkit's file loading equals it bit for bit, the
  output length included (``ceil(n * target / source)``, zero-padded).
- transformers' ASR *pipeline* differs where it resamples: it decodes every file with ``ffmpeg -ac 1 -ar 16000``
  (ffmpeg's resampler, and a stereo downmix of ``(L + R) / sqrt(2)``, not the mean) and resamples dict inputs with
  torchaudio's windowed-sinc ``resample``. Where nothing is resampled (mono files and arrays at 16 kHz, dicts at
  16 kHz) hugkit feeds the same samples, except that an mp3's decoder padding stays at the end of the pipeline's
  (it pipes the bytes into ffmpeg, which then cannot trim it; hugkit hands ffmpeg a file). Measured with torchaudio
  2.11 and ffmpeg 5.1 (``bench/audio_features.py`` prints it again): on espeak speech at 22.05 kHz and speech-like
  chirps + noise at 44.1 / 48 kHz, the 16 kHz samples differ from torchaudio's by an RMS of -33 to -42 dB relative
  to the signal (from ffmpeg's by -37 to -47 dB), 93% of it above 7 kHz, where the filters' transition bands
  differ; Whisper's log-mel then differs by a mean abs of 5e-4 to 3e-3 (max 0.3). Upsampling 8 kHz audio, the empty
  4-8 kHz band differs more in log-mel (mean 1.4e-2): both resamplers leave only their filters' leakage there.
- Integer arrays are PCM and scaled to [-1, 1) (int16 / 32768, ...), as soundfile does for files; the pipeline
  would pass them on unscaled, which no model expects.
- NaN or infinite samples, empty input and arrays with more than 2 dimensions are refused with an error that says
  where; the pipeline passes NaN on to the model.
"""

from __future__ import annotations

import io
import logging
import math
import os
import tempfile
import weakref
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from . import ffmpeg as _ffmpeg
from .ffmpeg import ffmpeg_path  # noqa: F401 - re-exported: hugkit.audio.io.ffmpeg_path

logger = logging.getLogger(__name__)

AUDIO_EXTRA = "pip install 'hugkit[audio]'"
# Source frames per block: ~22 s at 48 kHz, 4 MiB per channel in float32. Big enough that per-block overhead is
# nothing, small enough that a long file never sits in memory at its source rate.
BLOCK_FRAMES = 1 << 20
_MAX_CHANNELS = 32  # more than this on the short axis of a 2-D array is not a channel count


class AudioDecodeError(ValueError):
    """An audio file or payload exists but cannot be decoded: empty, corrupted, or in a format no decoder reads."""


class FFmpegNotFoundError(AudioDecodeError):
    """The audio needs ffmpeg (mp3 without libsndfile support, m4a, webm, ...) and ffmpeg is not installed."""


# --------------------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------------------
def load_audio(
    source: Any,
    sampling_rate: int | float | None = None,
    target_rate: int = 16000,
    mono: bool = True,
) -> np.ndarray:
    """``source`` (path, bytes, array, tensor or audio dict) as float32 samples at ``target_rate``.

    ``sampling_rate`` is the rate of an array or dict that does not carry one; files carry their own. An array
    without it is taken to be at ``target_rate`` already (transformers' pipeline assumption). The result may share
    memory with an input array that needed no conversion.
    """
    decoded = _open(source, sampling_rate, target_rate)
    if decoded.rate == target_rate and decoded.array is not None:
        samples = _to_mono(decoded.array) if mono else decoded.array
        return np.ascontiguousarray(samples, dtype=np.float32)
    total = None if decoded.frames is None else _resampled_length(decoded.frames, decoded.rate, target_rate)
    if total is None:  # ogg, mp3, ffmpeg: the length is known only once decoded
        return np.ascontiguousarray(np.concatenate(list(_converted_blocks(decoded, target_rate, mono)), axis=-1))
    # Known length (wav, flac, arrays): fill one preallocated array, so peak memory is the output plus a block.
    out = np.empty(total if mono else (decoded.channels, total), dtype=np.float32)
    filled = 0
    for block in _converted_blocks(decoded, target_rate, mono):
        n = block.shape[-1]
        out[..., filled : filled + n] = block
        filled += n
    if filled != total:  # cannot happen: _converted_blocks pads/trims to the same length
        raise RuntimeError(f"internal error: decoded {filled} samples, expected {total}.")
    return out


def stream_audio(
    source: Any,
    sampling_rate: int | float | None = None,
    target_rate: int = 16000,
    mono: bool = True,
    block_seconds: float = 30.0,
) -> Iterator[np.ndarray]:
    """Yield ``source`` as consecutive float32 blocks at ``target_rate`` (about ``block_seconds`` each).

    Their concatenation equals ``load_audio(source, ...)``; memory stays at a few blocks whatever the length.
    """
    if not block_seconds or block_seconds <= 0:
        raise ValueError(f"block_seconds must be a positive number of seconds, got {block_seconds!r}.")
    decoded = _open(source, sampling_rate, target_rate)
    decoded.block_frames = max(1, int(round(block_seconds * decoded.rate)))
    yield from _converted_blocks(decoded, target_rate, mono)


def resample(waveform: np.ndarray, orig_rate: int | float, target_rate: int | float) -> np.ndarray:
    """Resample ``(samples,)`` or ``(channels, samples)`` float audio with soxr "HQ" to ``ceil(n * target / orig)``
    samples (zero-padded at the end where soxr returns fewer), as librosa and transformers' ``load_audio`` do."""
    array = np.asarray(waveform)
    if array.ndim not in (1, 2):
        raise ValueError(f"resample expects (samples,) or (channels, samples), found shape {array.shape}.")
    _check_rate(orig_rate, "orig_rate")
    _check_rate(target_rate, "target_rate")
    array = np.ascontiguousarray(array, dtype=np.float32)
    if orig_rate == target_rate:
        return array
    soxr = _import_soxr()
    n = array.shape[-1]
    total = _resampled_length(n, orig_rate, target_rate)
    out = soxr.resample(array.T if array.ndim == 2 else array, orig_rate, target_rate, quality="HQ")
    out = out.T if array.ndim == 2 else out
    return np.ascontiguousarray(_fit_length(out, total), dtype=np.float32)


def to_mono(samples: Any) -> np.ndarray:
    """An array or tensor of samples as ``(samples,)`` float32: channels averaged (see the module docstring for how a
    2-D array's channel axis is told apart)."""
    return np.ascontiguousarray(_to_mono(_channels_first(_as_float_array(samples, "the audio"))), dtype=np.float32)


# --------------------------------------------------------------------------------------------------
# decoded sources: (rate, channels, frames) and a way to read (channels, frames) float32 blocks
# --------------------------------------------------------------------------------------------------
class _Decoded:
    """One opened source. ``array`` is set for in-memory samples; ``read_blocks`` yields (channels, n) float32."""

    def __init__(
        self, name: str, rate: int | float, channels: int, frames: int | None, read_blocks: Any,
        array: np.ndarray | None = None,
    ) -> None:
        self.name = name
        self.rate = rate
        self.channels = channels
        self.frames = frames
        self.read_blocks = read_blocks  # callable(block_frames) -> iterator of (channels, n) float32 blocks
        self.array = array
        self.block_frames = BLOCK_FRAMES


def _open(source: Any, sampling_rate: int | float | None, target_rate: int) -> _Decoded:
    _check_rate(target_rate, "target_rate")
    if sampling_rate is not None:
        _check_rate(sampling_rate, "sampling_rate")
    if isinstance(source, (str, os.PathLike)):
        return _open_path(source, sampling_rate)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return _open_bytes(bytes(source), "the audio bytes", sampling_rate)
    if isinstance(source, dict):
        return _open_dict(source, sampling_rate, target_rate)
    if hasattr(source, "get_all_samples") and hasattr(source, "metadata"):  # torchcodec AudioDecoder (datasets >= 4)
        samples = source.get_all_samples()
        return _open_array(samples.data, samples.sample_rate, "the AudioDecoder's samples", target_rate)
    if isinstance(source, (np.ndarray, list, tuple)) or _is_torch(source):
        if sampling_rate is None:
            logger.debug("No sampling_rate given with the audio array: taking it to be %s Hz already.", target_rate)
        return _open_array(source, sampling_rate or target_rate, "the audio array", target_rate)
    raise TypeError(
        "Audio should be a file path, the bytes of an audio file, a numpy array or torch tensor of samples, or a dict "
        f"with 'array' (or 'raw') and 'sampling_rate' (as datasets gives), found {type(source).__name__}."
    )


def _open_path(source: str | os.PathLike, sampling_rate: int | float | None) -> _Decoded:
    text = os.fspath(source)
    if isinstance(text, str) and text.startswith(("http://", "https://")):
        raise ValueError(
            f"{text!r} is a URL; hugkit reads local files only (it never reaches out to the network). Download the file "
            "and pass its path, or pass its bytes."
        )
    path = Path(text).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"The audio file {path} does not exist. Check the path.")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; pass the path of an audio file in it.")
    size = path.stat().st_size
    if size == 0:
        raise AudioDecodeError(f"The audio file {path} is empty (0 bytes). Re-create or re-download it.")
    with open(path, "rb") as handle:
        head = handle.read(16)
    return _check_file_rate(_open_encoded(path, head, str(path)), sampling_rate)


def _open_bytes(data: bytes, name: str, sampling_rate: int | float | None) -> _Decoded:
    if not data:
        raise AudioDecodeError(f"{name} are empty (0 bytes): nothing to decode.")
    return _check_file_rate(_open_encoded(data, data[:16], name), sampling_rate)


def _open_dict(source: dict, sampling_rate: int | float | None, target_rate: int) -> _Decoded:
    samples = source.get("raw", source.get("array"))
    if samples is not None:
        rate = source.get("sampling_rate")
        if rate is None:
            rate = sampling_rate
        if rate is None:
            # Refused as transformers' pipeline refuses it: a dict says where its samples came from, so a missing
            # rate is a bug upstream, not a hint to assume the model's rate.
            raise ValueError(
                f"The audio dict has samples but no 'sampling_rate' (keys: {sorted(source)}). Add the rate the samples "
                "were recorded at, e.g. {'array': samples, 'sampling_rate': 16000}."
            )
        if sampling_rate is not None and sampling_rate != rate:
            raise ValueError(
                f"The audio dict says sampling_rate={rate}, but sampling_rate={sampling_rate} was passed too. "
                "Pass one of them."
            )
        return _open_array(samples, rate, "the dict's audio array", target_rate)
    if source.get("bytes") is not None:
        name = f"the audio bytes of {source['path']}" if source.get("path") else "the dict's audio bytes"
        return _open_bytes(bytes(source["bytes"]), name, sampling_rate)
    if source.get("path") is not None:
        return _open_path(source["path"], sampling_rate)
    raise ValueError(
        f"An audio dict needs 'array' (or 'raw') with 'sampling_rate', or 'bytes' or 'path'; it has {sorted(source)}."
    )


def _open_array(samples: Any, rate: int | float, name: str, target_rate: int) -> _Decoded:
    _check_rate(rate, "sampling_rate")
    array = _channels_first(_as_float_array(samples, name))
    _check_finite(array, name, rate)
    channels, frames = array.shape

    def read_blocks(block_frames: int) -> Iterator[np.ndarray]:
        for start in range(0, frames, block_frames):
            yield array[:, start : start + block_frames]

    return _Decoded(name, rate, channels, frames, read_blocks, array=array)


def _check_file_rate(decoded: _Decoded, sampling_rate: int | float | None) -> _Decoded:
    if sampling_rate is not None and sampling_rate != decoded.rate:
        raise ValueError(
            f"{decoded.name} is recorded at {decoded.rate} Hz, but sampling_rate={sampling_rate} was passed. A file "
            "carries its own rate: leave sampling_rate out (it is resampled to target_rate either way)."
        )
    return decoded


# --------------------------------------------------------------------------------------------------
# decoders
# --------------------------------------------------------------------------------------------------
def _sniff(head: bytes) -> str | None:
    """The container from a file's first bytes (enough to route mp3 to ffmpeg first)."""
    if head[:4] in (b"RIFF", b"RF64") and head[8:12] == b"WAVE":
        return "wav"
    if head[:4] == b"fLaC":
        return "flac"
    if head[:4] == b"OggS":
        return "ogg"
    if head[:3] == b"ID3":
        return "mp3"
    # An MPEG audio frame sync (11 bits) with a layer other than 00 (00 is AAC's ADTS header).
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:
        return "mp3"
    return None


def _open_encoded(source: Path | bytes, head: bytes, name: str) -> _Decoded:
    kind = _sniff(head)
    ffmpeg = _ffmpeg.ffmpeg_path()
    if kind == "mp3" and ffmpeg:
        # transformers' pipeline decodes mp3 with ffmpeg: the same decoder gives the same samples.
        return _open_ffmpeg(source, name, ffmpeg)
    try:
        return _open_soundfile(source, name, exact_length=kind in ("wav", "flac"))
    except _SoundfileCannotRead as exc:
        if ffmpeg:
            logger.debug("soundfile cannot read %s (%s); decoding it with ffmpeg.", name, exc)
            return _open_ffmpeg(source, name, ffmpeg, soundfile_error=str(exc))
        raise FFmpegNotFoundError(
            f"Cannot decode {name}: soundfile (libsndfile) does not read its format ({exc})"
            f"{f' and it looks like {kind}' if kind else ''}. Formats such as mp3, m4a/aac, webm and mp4 need ffmpeg, "
            f"which is not installed: {_ffmpeg.INSTALL_HINT}. Or convert the file to wav or flac."
        ) from None


class _SoundfileCannotRead(Exception):
    """soundfile could not open the data (unknown or broken format): another decoder may."""


def _import_soundfile() -> Any:
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: the package is there but libsndfile is not
        raise ImportError(f"Reading audio files needs the soundfile package ({exc}): {AUDIO_EXTRA}.") from exc
    return soundfile


def _import_soxr() -> Any:
    try:
        import soxr
    except ImportError as exc:
        raise ImportError(f"Resampling audio needs the soxr package ({exc}): {AUDIO_EXTRA}.") from exc
    return soxr


def _open_soundfile(source: Path | bytes, name: str, exact_length: bool) -> _Decoded:
    soundfile = _import_soundfile()

    def opened() -> Any:
        return soundfile.SoundFile(io.BytesIO(source) if isinstance(source, bytes) else source)

    try:
        with opened() as handle:
            rate, channels, frames = handle.samplerate, handle.channels, handle.frames
    except (RuntimeError, soundfile.SoundFileError) as exc:
        raise _SoundfileCannotRead(str(exc).strip()) from exc
    if frames == 0:
        raise AudioDecodeError(f"{name} holds no audio samples (a valid {rate} Hz header with 0 frames).")

    def read_blocks(block_frames: int) -> Iterator[np.ndarray]:
        position = 0
        with opened() as handle:
            while True:
                try:
                    block = handle.read(block_frames, dtype="float32", always_2d=True)
                except (RuntimeError, soundfile.SoundFileError) as exc:
                    raise AudioDecodeError(f"{name} is corrupted: decoding failed partway ({exc}).") from exc
                if not len(block):
                    return
                block = block.T  # (channels, n)
                _check_finite(block, name, rate, offset=position)
                position += block.shape[1]
                yield block

    # soundfile's frame count is exact for wav/flac (read from the header); for ogg and mp3 it comes from a scan
    # that can disagree with decoding, so there the length is counted while reading instead.
    known = frames if exact_length and 0 < frames < (1 << 62) else None
    return _Decoded(name, rate, channels, known, read_blocks)


def _open_ffmpeg(source: Path | bytes, name: str, ffmpeg: str, soundfile_error: str | None = None) -> _Decoded:
    """Decode with ffmpeg: one short run reads the rate and channels, the blocks come from a second run started
    when they are read."""
    temp_path = None
    if isinstance(source, bytes):
        # Bytes go through a temporary file, not stdin: containers such as mp4/m4a keep their index at the end,
        # which ffmpeg cannot seek to on a pipe.
        with tempfile.NamedTemporaryFile(prefix="hugkit-audio-", delete=False) as temp:
            temp.write(source)
        temp_path = path = temp.name
    else:
        path = os.fspath(source)

    def failure(said: str) -> AudioDecodeError:
        tried = f" soundfile said: {soundfile_error};" if soundfile_error else ""
        return AudioDecodeError(
            f"Cannot decode {name}:{tried} ffmpeg said: {said}. The file is corrupted or not audio; re-create or "
            "re-download it, or convert it to wav or flac."
        )

    try:
        rate, channels = _ffmpeg.probe(ffmpeg, path)
    except _ffmpeg.FFmpegError as exc:
        _remove(temp_path)
        raise failure(str(exc)) from None

    def read_blocks(block_frames: int) -> Iterator[np.ndarray]:
        position = 0
        try:
            for block in _ffmpeg.iter_blocks(ffmpeg, path, channels, block_frames):
                _check_finite(block, name, rate, offset=position)
                position += block.shape[1]
                yield block
        except _ffmpeg.FFmpegError as exc:
            raise failure(str(exc)) from None

    decoded = _Decoded(name, rate, channels, None, read_blocks)
    if temp_path is not None:
        weakref.finalize(decoded, _remove, temp_path)  # however the reading ends, or if it never starts
    return decoded


def _remove(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


# --------------------------------------------------------------------------------------------------
# conversion: downmix, resample, fix the length
# --------------------------------------------------------------------------------------------------
def _converted_blocks(decoded: _Decoded, target_rate: int, mono: bool) -> Iterator[np.ndarray]:
    """Blocks at ``target_rate``, their total fixed to ``ceil(frames * target / rate)`` (held one block back, so
    the last can be trimmed or padded)."""
    stream = None
    if decoded.rate != target_rate:
        soxr = _import_soxr()
        stream = soxr.ResampleStream(
            decoded.rate, target_rate, 1 if mono else decoded.channels, dtype="float32", quality="HQ"
        )
    frames_in = 0
    produced = 0
    pending: np.ndarray | None = None
    for block in decoded.read_blocks(decoded.block_frames):
        frames_in += block.shape[1]
        block = _to_mono(block) if mono else block
        if stream is not None:
            block = _resample_chunk(stream, block, last=False)
        if not block.shape[-1]:
            continue
        if pending is not None:
            produced += pending.shape[-1]
            yield np.ascontiguousarray(pending, dtype=np.float32)
        pending = block
    if frames_in == 0:
        raise AudioDecodeError(f"{decoded.name} holds no audio samples.")
    if stream is not None:
        empty = np.zeros(0 if mono else (decoded.channels, 0), np.float32)
        tail = _resample_chunk(stream, empty, last=True)
        pending = tail if pending is None else np.concatenate([pending, tail], axis=-1)
    total = _resampled_length(frames_in, decoded.rate, target_rate)
    if pending is None:
        pending = np.zeros(0 if mono else (decoded.channels, 0), np.float32)
    yield np.ascontiguousarray(_fit_length(pending, total - produced), dtype=np.float32)


def _resample_chunk(stream: Any, block: np.ndarray, last: bool) -> np.ndarray:
    # soxr streams take (frames,) or (frames, channels); hugkit's blocks are (channels, frames).
    if block.ndim == 1:
        return stream.resample_chunk(np.ascontiguousarray(block, dtype=np.float32), last=last)
    out = stream.resample_chunk(np.ascontiguousarray(block.T, dtype=np.float32), last=last)
    return out.T


def _resampled_length(frames: int, orig_rate: int | float, target_rate: int | float) -> int:
    if orig_rate == target_rate:
        return frames
    return math.ceil(frames * target_rate / orig_rate)


def _fit_length(samples: np.ndarray, length: int) -> np.ndarray:
    have = samples.shape[-1]
    if have >= length:
        return samples[..., :max(length, 0)]
    pad = [(0, 0)] * (samples.ndim - 1) + [(0, length - have)]
    return np.pad(samples, pad)


def _to_mono(block: np.ndarray) -> np.ndarray:
    """(channels, n) -> (n,): the mean of the channels, computed as transformers' ``load_audio`` computes it."""
    if block.ndim == 1:
        return block
    return block[0] if block.shape[0] == 1 else block.mean(axis=0)


# --------------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------------
def _is_torch(value: Any) -> bool:
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


_PCM_SCALE = {np.dtype(np.int8): 128.0, np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2147483648.0}


def _as_float_array(samples: Any, name: str) -> np.ndarray:
    """Samples as a float32 numpy array; integer PCM scaled to [-1, 1) as soundfile scales it."""
    if _is_torch(samples):
        samples = samples.detach().cpu()
        if samples.dtype.is_floating_point and samples.dtype.itemsize < 4:  # bf16/fp16: numpy has no bf16
            samples = samples.float()
        samples = samples.numpy()
    array = np.asarray(samples)
    if array.dtype == np.uint8:  # unsigned 8-bit PCM is centred on 128
        array = (array.astype(np.float32) - 128.0) / 128.0
    elif array.dtype in _PCM_SCALE:
        array = (array.astype(np.float64) / _PCM_SCALE[array.dtype]).astype(np.float32)
    elif array.dtype.kind == "f":
        array = array.astype(np.float32, copy=False)
    elif array.dtype.kind == "b" or array.dtype.kind in "iuc" or array.dtype == object:
        raise TypeError(
            f"{name} has dtype {array.dtype}; audio samples should be floats in [-1, 1] or 8/16/32-bit integer PCM."
        )
    if array.ndim == 0 or array.size == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}): there are no samples to process.")
    if array.ndim > 2:
        raise ValueError(
            f"{name} has {array.ndim} dimensions (shape {array.shape}); audio is (samples,) or (channels, samples). "
            "Pass one recording at a time, or a list of them."
        )
    return array


def _channels_first(array: np.ndarray) -> np.ndarray:
    """(samples,) or a 2-D array -> (channels, samples). transformers' pipeline reads 2-D as (channels, samples) with
    at most 2 channels; hugkit keeps that reading and also takes (samples, channels), which soundfile returns."""
    if array.ndim == 1:
        return array[None]
    rows, cols = array.shape
    if rows <= 2:
        return array
    if cols <= 2:
        return array.T
    if rows <= _MAX_CHANNELS < cols:
        return array
    if cols <= _MAX_CHANNELS < rows:
        return array.T
    raise ValueError(
        f"Cannot tell the channel axis of audio of shape {array.shape}: neither axis is a channel count (at most "
        f"{_MAX_CHANNELS}) beside a longer sample axis. Pass (samples,) or (channels, samples)."
    )


def _check_finite(block: np.ndarray, name: str, rate: int | float, offset: int = 0) -> None:
    """Refuse NaN/inf: they would turn every feature frame they touch into NaN, far from where they were."""
    if np.isfinite(block).all():
        return
    bad = ~np.isfinite(block)
    channel, index = (int(i[0]) for i in np.nonzero(bad))
    index += offset
    raise ValueError(
        f"{name} holds NaN or infinite samples ({int(bad.sum())} in this stretch; the first in channel {channel} at "
        f"sample {index}, {index / rate:.3f} s in). Clean the audio first, e.g. with np.nan_to_num."
    )


def _check_rate(rate: Any, name: str) -> None:
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)) or not rate > 0:
        raise ValueError(f"{name} must be a positive number of samples per second (like 16000), got {rate!r}.")
