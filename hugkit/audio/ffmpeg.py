"""ffmpeg as an audio decoder: a subprocess that writes 32-bit float WAV to a pipe, read block by block.

ffmpeg decodes at the source's own rate and channel count; hugkit downmixes and resamples the samples itself, the
same way whichever decoder ran (``hugkit.audio.io``). Nothing here knows about hugkit's inputs: it takes a file path
and raises ``FFmpegError`` with what ffmpeg said.
"""

from __future__ import annotations

import logging
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np

logger = logging.getLogger(__name__)

INSTALL_HINT = (
    "install ffmpeg (Debian/Ubuntu: `apt-get install -y ffmpeg`; macOS: `brew install ffmpeg`; "
    "conda: `conda install -c conda-forge ffmpeg`)"
)


class FFmpegError(Exception):
    """ffmpeg ran but produced no audio; the message is what it said."""


def ffmpeg_path() -> str | None:
    """The ffmpeg executable (``HUGKIT_FFMPEG`` or the first ``ffmpeg`` on PATH), or None when it is not installed."""
    explicit = os.environ.get("HUGKIT_FFMPEG")
    if explicit:
        return explicit if Path(explicit).is_file() else None
    return shutil.which("ffmpeg")


def _command(ffmpeg: str, path: str) -> list[str]:
    # -map 0:a:0: the first audio stream (cover art and video are skipped); -bitexact: no encoder tag chunk.
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-i", path, "-vn", "-map", "0:a:0",
            "-f", "wav", "-c:a", "pcm_f32le", "-bitexact", "pipe:1"]


def _start(ffmpeg: str, path: str) -> tuple[subprocess.Popen, IO[bytes]]:
    errors = tempfile.TemporaryFile()  # a file, not a pipe: a broken mp3 can log more than a pipe buffers
    proc = subprocess.Popen(_command(ffmpeg, path), stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL)
    return proc, errors


def _stop(proc: subprocess.Popen, errors: IO[bytes]) -> str:
    """End ``proc`` (killed if still running) and return what it wrote to stderr."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()
    errors.seek(0)
    said = errors.read().decode("utf-8", "replace").strip()
    errors.close()
    return said


def probe(ffmpeg: str, path: str) -> tuple[int, int]:
    """(rate, channels) of the file's first audio stream: a run that stops after the WAV header."""
    proc, errors = _start(ffmpeg, path)
    try:
        header = _read_wav_header(proc.stdout)
    except FFmpegError as exc:
        said = _stop(proc, errors)
        raise FFmpegError(said[-1500:] or f"{exc} (exit status {proc.returncode})") from None
    _stop(proc, errors)
    return header


def iter_blocks(ffmpeg: str, path: str, channels: int, block_frames: int) -> Iterator[np.ndarray]:
    """The decoded samples as (channels, n) float32 blocks of ``block_frames`` (the last may be shorter)."""
    proc, errors = _start(ffmpeg, path)
    frame_bytes = 4 * channels
    produced = 0
    finished = False
    try:
        _read_wav_header(proc.stdout)
        while True:
            data = proc.stdout.read(block_frames * frame_bytes)
            if not data:
                break
            usable = len(data) - len(data) % frame_bytes
            # A copy: np.frombuffer over bytes is read-only, and callers may edit what they get.
            block = np.frombuffer(data[:usable], dtype="<f4").reshape(-1, channels).T.copy()
            produced += block.shape[1]
            yield block
        finished = True
    finally:
        said = _stop(proc, errors)  # also when the reader stopped early
    if finished and produced == 0:
        raise FFmpegError(said[-1500:] or f"no samples (exit status {proc.returncode})")
    if finished and proc.returncode:
        logger.warning("ffmpeg reported errors decoding %s; kept the %d samples it decoded: %s",
                       path, produced, said[-500:])


def _read_exact(stream: Any, n: int) -> bytes:
    data = stream.read(n)
    if len(data) != n:
        raise FFmpegError("ffmpeg produced no audio")
    return data


def _read_wav_header(stream: Any) -> tuple[int, int]:
    """(rate, channels) from the WAV header ffmpeg writes on a pipe. Sizes there are placeholders (a pipe cannot be
    rewound to fill them in), so the data chunk is read to the end of the stream instead."""
    riff = _read_exact(stream, 12)
    if riff[:4] not in (b"RIFF", b"RF64") or riff[8:12] != b"WAVE":
        raise FFmpegError("ffmpeg's output is not WAV")
    rate = channels = None
    while True:
        chunk_id, size = struct.unpack("<4sI", _read_exact(stream, 8))
        if chunk_id == b"data":
            break
        body = _read_exact(stream, size + (size & 1))
        if chunk_id == b"fmt ":
            fmt_tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if bits != 32 or fmt_tag not in (3, 0xFFFE):  # IEEE float, or WAVE_FORMAT_EXTENSIBLE (> 2 channels)
                raise FFmpegError(f"ffmpeg wrote {bits}-bit format {fmt_tag:#x}, expected 32-bit float")
    if not rate or not channels:
        raise FFmpegError("ffmpeg's WAV output has no format chunk")
    return rate, channels
