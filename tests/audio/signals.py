"""Test audio made on the spot (no files are shipped): sweeps, noise, silence, speech-like chirps, tones; and the
transformers references the audio tests compare with (its numpy and torch feature paths, its ASR pipeline's
preprocessing)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

logging.getLogger("transformers").setLevel(logging.ERROR)  # its "pass sampling_rate" advice, not test output


def sweep(rate: int = 16000, seconds: float = 2.0, low: float = 100.0, high: float | None = None,
          amplitude: float = 0.5) -> np.ndarray:
    """A linear sine sweep from ``low`` to ``high`` Hz (default: 90% of Nyquist)."""
    high = high or 0.45 * rate
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * (low * t + (high - low) / (2 * seconds) * t**2))).astype(np.float32)


def noise(rate: int = 16000, seconds: float = 2.0, scale: float = 0.1, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(int(rate * seconds)) * scale).astype(np.float32)


def silence(rate: int = 16000, seconds: float = 2.0) -> np.ndarray:
    return np.zeros(int(rate * seconds), dtype=np.float32)


def tone(rate: int = 16000, seconds: float = 2.0, freq: float = 440.0, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def chirps(rate: int = 16000, seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Speech-like: 'syllables' of a gliding 100-250 Hz pitch with 12 harmonics under a 4 Hz envelope, plus breath."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(rate * seconds)) / rate
    pitch = 170 + 60 * np.sin(2 * np.pi * 0.7 * t) + 20 * np.sin(2 * np.pi * 3.1 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    voiced = sum(np.sin(k * phase) / k for k in range(1, 13) if k * 250 < rate / 2)
    envelope = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 2
    return (0.3 * envelope * voiced + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(samples, 2), the layout soundfile writes and reads."""
    return np.stack([left, right], axis=1)


def require_tool(name: str) -> str:
    """The path of a command-line tool a test needs (ffmpeg, espeak-ng). Skipped in an ad-hoc run where it is
    missing; a failure where HUGKIT_REQUIRE_ASSETS=1 (scripts/test.sh, so CI), whose setup installs it."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed: apt-get install -y {name}"
        if os.environ.get("HUGKIT_REQUIRE_ASSETS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


def speak(text: str, path: Path) -> Path:
    """Real synthetic speech from espeak-ng (a 22,050 Hz mono wav)."""
    subprocess.run([require_tool("espeak-ng"), "-w", str(path), text], check=True, capture_output=True)
    return path


def ffmpeg_convert(source: Path, target: Path, *args: str) -> Path:
    subprocess.run([require_tool("ffmpeg"), "-nostdin", "-y", "-loglevel", "error", "-i", str(source), *args,
                    str(target)], check=True)
    return target


# --- transformers references -----------------------------------------------------------------------
@contextlib.contextmanager
def transformers_numpy_path() -> Iterator[None]:
    """Make transformers' WhisperFeatureExtractor take its float64 numpy path (it takes torch's when torch is
    importable)."""
    import transformers.models.whisper.feature_extraction_whisper as module

    saved = module.is_torch_available
    module.is_torch_available = lambda: False
    try:
        yield
    finally:
        module.is_torch_available = saved


def reference_features(x: Any, *, numpy_path: bool, **kwargs: Any) -> dict[str, np.ndarray]:
    """transformers' WhisperFeatureExtractor output as numpy arrays."""
    from transformers import WhisperFeatureExtractor

    settings = {k: kwargs.pop(k) for k in ("feature_size", "padding_side") if k in kwargs}
    extractor = WhisperFeatureExtractor(**settings)
    context = transformers_numpy_path() if numpy_path else contextlib.nullcontext()
    with context:
        out = extractor(x, sampling_rate=16000, return_tensors="np", **kwargs)
    return {key: np.asarray(value) for key, value in out.items()}


def pipeline_inputs(inputs: Any, feature_size: int = 80) -> dict[str, np.ndarray]:
    """What transformers' ASR pipeline (Whisper) feeds the model for ``inputs``: its real ``preprocess`` on a bare
    pipeline object (no model is needed to preprocess)."""
    from transformers import WhisperFeatureExtractor
    from transformers.pipelines.automatic_speech_recognition import AutomaticSpeechRecognitionPipeline

    pipe = AutomaticSpeechRecognitionPipeline.__new__(AutomaticSpeechRecognitionPipeline)
    pipe.feature_extractor = WhisperFeatureExtractor(feature_size=feature_size)
    pipe.type = "seq2seq_whisper"
    pipe.model = types.SimpleNamespace(dtype=None)  # Pipeline.dtype reads the model's
    (item,) = list(pipe.preprocess(inputs))
    return {key: np.asarray(value) for key, value in item.items() if key in ("input_features", "attention_mask")}
