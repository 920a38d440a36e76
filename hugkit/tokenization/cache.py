"""On-disk cache of converted tokenizers, so a vocabulary is converted once per machine.

Layout: `<HUGKIT_CACHE or ~/.cache/hugkit>/tokenizers/<key>.json` holds the `tokenizers` JSON (loadable with
`Tokenizer.from_file`) and `<key>.meta.json` the few settings the conversion derived from the source (special
pieces of a SentencePiece model, ...). The key is a sha256 over the converter version, the source files' bytes
and the options that shape the result, so any change to one of them misses the cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

logger = logging.getLogger(__name__)

# Bump when a converter's output changes for the same inputs.
CONVERTER_VERSION = 2  # 2: T5/Pegasus/mBART/NLLB class pipelines, Marian engines


def cache_root() -> Path:
    root = os.environ.get("HUGKIT_CACHE")
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "hugkit"
    return base / "tokenizers"


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def conversion_key(kind: str, source_files: list[Path], options: dict) -> str:
    description = {
        "version": CONVERTER_VERSION,
        "kind": kind,
        "files": [[Path(path).name, _file_digest(Path(path))] for path in source_files],
        "options": options,
    }
    encoded = json.dumps(description, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8")
    return hashlib.sha256(encoded).hexdigest()


def load_cached(key: str) -> tuple[Path, dict] | None:
    """Return (path of the tokenizer JSON, derived settings) or None when absent or unreadable."""
    root = cache_root()
    tokenizer_path = root / f"{key}.json"
    meta_path = root / f"{key}.meta.json"
    # The meta file is written last, so its presence means the pair is complete.
    if not (meta_path.is_file() and tokenizer_path.is_file()):
        return None
    try:
        with open(meta_path, encoding="utf-8") as handle:
            meta = json.load(handle)
    except (OSError, ValueError) as error:
        logger.debug("Ignoring unreadable tokenizer cache entry %s: %s", meta_path, error)
        return None
    return tokenizer_path, meta


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)  # mkstemp makes 0600; cache entries are ordinary readable files
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        raise


def store(key: str, tokenizer_json: str, meta: dict) -> None:
    """Write an entry; a failure (read-only disk, ...) only costs a future conversion, so it is logged."""
    root = cache_root()
    try:
        _write_atomically(root / f"{key}.json", tokenizer_json)
        _write_atomically(root / f"{key}.meta.json", json.dumps(meta, ensure_ascii=False))
    except OSError as error:
        logger.info("Could not cache the converted tokenizer in %s: %s", root, error)
