"""Audio for hugkit: reading and resampling (``io``) and feature extractors (Whisper's log-mel).

``import hugkit.audio`` is cheap: names are imported on first use (PEP 562), so soundfile, soxr and torch load only
when audio is actually read or featurized.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_audio": "hugkit.audio.io",
    "stream_audio": "hugkit.audio.io",
    "resample": "hugkit.audio.io",
    "to_mono": "hugkit.audio.io",
    "ffmpeg_path": "hugkit.audio.ffmpeg",
    "AudioDecodeError": "hugkit.audio.io",
    "FFmpegNotFoundError": "hugkit.audio.io",
    "WhisperFeatureExtractor": "hugkit.audio.feature_extraction_whisper",
    "BatchFeature": "hugkit.audio.feature_extraction_whisper",
    "mel_filter_bank": "hugkit.audio.feature_extraction_whisper",
    "WhisperProcessor": "hugkit.audio.processing_whisper",
    "WhisperTokenizer": "hugkit.audio.whisper_decoding",
    "StreamingTranscriber": "hugkit.audio.streaming_asr",
    "StreamingTranscript": "hugkit.audio.streaming_asr",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'hugkit.audio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
