"""Speech for the Whisper tests, made on the spot (nothing is committed): espeak-ng speaks known sentences, the
built-in Whisper tiny.en is converted into a temporary hugkit cache, and transformers / faster-whisper references
run on the same folder or on the original CTranslate2 file.

Shared by tests/audio/test_wer.py, tests/audio/test_whisper_processor.py and
tests/pipelines/test_automatic_speech_recognition.py.
"""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from tests.assets import require
from tests.convert.test_ctranslate2_whisper import PACKAGE_ROOT, SENTENCES, WHISPER_CT2, word_errors, words

from .signals import require_tool

logging.getLogger("transformers").setLevel(logging.ERROR)

RATE = 16000
# More sentences for the WER corpus, spoken the same way (en-us, 130 words a minute).
MORE_SENTENCES = (
    "She sells fresh bread at the market every Saturday morning.",
    "Turn left at the next corner and walk two blocks north.",
    "The meeting has been moved to Thursday at three o'clock.",
    "My brother plays the guitar in a small band.",
    "Please remember to close the window before you leave.",
)
CORPUS = SENTENCES + MORE_SENTENCES

__all__ = ["CORPUS", "MORE_SENTENCES", "PACKAGE_ROOT", "RATE", "SENTENCES", "WHISPER_CT2", "builtin_cache",
           "builtin_folder", "use_builtin", "spoken", "spoken_file", "word_errors", "words", "corpus_wer"]


@functools.lru_cache(maxsize=None)
def _workdir() -> Path:
    return Path(tempfile.mkdtemp(prefix="hugkit-speech-tests-"))


def builtin_cache() -> Path:
    """A hugkit cache folder for this test session (the converted built-in Whisper lives there)."""
    folder = _workdir() / "cache"
    folder.mkdir(exist_ok=True)
    return folder


@functools.lru_cache(maxsize=None)
def _convert() -> Path:
    from hugkit.convert import builtin_whisper

    saved_env, saved_path = os.environ.get("HUGKIT_CACHE"), list(sys.path)
    os.environ["HUGKIT_CACHE"] = str(builtin_cache())
    sys.path.insert(0, str(PACKAGE_ROOT))
    try:
        return builtin_whisper.builtin_whisper_folder()
    finally:
        sys.path[:] = saved_path
        if saved_env is None:
            os.environ.pop("HUGKIT_CACHE", None)
        else:
            os.environ["HUGKIT_CACHE"] = saved_env


def builtin_folder() -> Path:
    """The built-in Whisper tiny.en converted to a transformers folder (once per session)."""
    require(WHISPER_CT2)
    return _convert()


def use_builtin(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make ``pipeline("automatic-speech-recognition")`` find the built-in model as an installed package would."""
    folder = builtin_folder()
    monkeypatch.setenv("HUGKIT_CACHE", str(builtin_cache()))
    monkeypatch.syspath_prepend(str(PACKAGE_ROOT))
    return folder


@functools.lru_cache(maxsize=None)
def _spoken(text: str) -> np.ndarray:
    import soundfile as sf

    from hugkit.audio.io import load_audio

    path = _workdir() / f"espeak-{abs(hash(text))}.wav"
    subprocess.run([require_tool("espeak-ng"), "-v", "en-us", "-s", "130", "-w", str(path), text], check=True,
                   capture_output=True)
    samples = load_audio(path, target_rate=RATE)  # 22,050 Hz -> 16 kHz (soxr HQ)
    sf.write(_workdir() / f"speech-{abs(hash(text))}.wav", samples, RATE, subtype="FLOAT")
    return samples


def spoken(text: str) -> np.ndarray:
    """espeak-ng speaking ``text``, as float32 samples at 16 kHz (a read-only array: copy before changing it)."""
    samples = _spoken(text)
    samples.setflags(write=False)
    return samples


def spoken_file(text: str) -> str:
    """A 16 kHz mono float WAV of ``spoken(text)``: transformers' pipeline (ffmpeg) and hugkit read the same samples."""
    _spoken(text)
    return str(_workdir() / f"speech-{abs(hash(text))}.wav")


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    errors = sum(word_errors(words(r), words(h)) for r, h in zip(references, hypotheses))
    return errors / sum(len(words(r)) for r in references)
