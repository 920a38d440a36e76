"""Find a checkpoint's files: a local folder, else the Hugging Face cache, else a download.

The cache layout is the real one (``models--org--name/{refs,snapshots}/...``), shared with transformers,
so nothing is downloaded twice. When the files are already local no network call is made at all;
huggingface_hub is imported only when a download is actually needed.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

logger = logging.getLogger(__name__)

_COMMIT_HASH = re.compile(r"^[0-9a-f]{40}$")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")


class CheckpointNotFoundError(OSError):
    """Raised when a model or tokenizer cannot be found locally, in the cache, or on the hub."""


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def is_offline_mode() -> bool:
    return _truthy(os.environ.get("HF_HUB_OFFLINE")) or _truthy(os.environ.get("TRANSFORMERS_OFFLINE"))


def default_cache_dir() -> Path:
    """Same precedence as huggingface_hub: HF_HUB_CACHE, then HF_HOME/hub, then XDG/~/.cache."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HUGGINGFACE_HUB_CACHE"):
        return Path(os.environ["HUGGINGFACE_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def cached_snapshot(repo_id: str, revision: str | None = None, cache_dir: str | os.PathLike | None = None) -> Path | None:
    """The snapshot folder of ``repo_id`` at ``revision`` in the HF cache, or None when absent."""
    cache = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    revision = revision or "main"
    if _COMMIT_HASH.match(revision):
        commit = revision
    else:
        ref_file = repo_dir / "refs" / revision
        if not ref_file.is_file():
            return None
        commit = ref_file.read_text().strip()
    snapshot = repo_dir / "snapshots" / commit
    return snapshot if snapshot.is_dir() else None


def resolve(
    path_or_repo_id: str | os.PathLike,
    *,
    revision: str | None = None,
    subfolder: str = "",
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    allow_patterns: list[str] | None = None,
) -> Path:
    """Return a local directory holding the checkpoint's files.

    Order: an existing local folder; the HF cache snapshot for ``revision`` (default "main");
    a download with huggingface_hub unless ``local_files_only`` or ``HF_HUB_OFFLINE`` is set.
    """
    if not isinstance(path_or_repo_id, (str, os.PathLike)):
        raise TypeError(
            f"Expected a model id (like 'bert-base-uncased') or a local folder path, got {type(path_or_repo_id).__name__}: "
            f"{path_or_repo_id!r}."
        )
    name = os.fspath(path_or_repo_id)
    subfolder = subfolder or ""
    local = Path(name).expanduser()
    if local.is_dir():
        target = local / subfolder
        if not target.is_dir():
            raise CheckpointNotFoundError(f"The folder {local} has no subfolder {subfolder!r}.")
        return target
    if local.is_file():
        raise CheckpointNotFoundError(
            f"{name!r} is a file, but a checkpoint folder was expected (the folder holding config.json and the weights). "
            f"Pass the folder {str(local.parent)!r} instead."
        )
    if not _REPO_ID.match(name) or name.startswith((".", "/", "~")):
        raise CheckpointNotFoundError(
            f"{name!r} is neither an existing local folder nor a valid hub model id ('name' or 'org/name'). "
            "Check the path for typos."
        )

    snapshot = cached_snapshot(name, revision, cache_dir)
    if snapshot is not None:
        target = snapshot / subfolder
        if target.is_dir():
            logger.debug("Using cached snapshot %s", target)
            return target

    offline = local_files_only or is_offline_mode()
    cache_shown = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
    tried = (
        f"  - a local folder named {name!r}: not found (cwd {os.getcwd()})\n"
        f"  - the Hugging Face cache: no snapshot of {name!r} at revision {revision or 'main'!r} "
        f"under {cache_shown}\n"
    )
    if offline:
        why = "local_files_only=True" if local_files_only else "HF_HUB_OFFLINE=1"
        raise CheckpointNotFoundError(
            f"Could not find model {name!r}. Tried:\n{tried}"
            f"  - the hub: skipped because {why}.\n"
            f"Fix: pass the path of a local checkpoint folder, or fetch it once on a machine with network access "
            f"(`huggingface-cli download {name}`) into {cache_shown}, or unset {why.split('=')[0]} to allow downloads."
        )

    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - huggingface_hub is a dependency
        raise CheckpointNotFoundError(
            f"Could not find {name!r} locally and huggingface_hub is not installed to download it: pip install huggingface_hub"
        ) from exc
    try:
        downloaded = snapshot_download(
            name, revision=revision, cache_dir=cache_dir, token=token, allow_patterns=allow_patterns
        )
    except Exception as exc:  # network errors, 404s, gated repos: one message that says what was tried
        raise CheckpointNotFoundError(
            f"Could not find model {name!r}. Tried:\n{tried}"
            f"  - downloading from the Hugging Face hub: {type(exc).__name__}: {exc}\n"
            "Fix: check the model id and revision, your network and token (gated models need `token=`), "
            "or pass a local checkpoint folder."
        ) from exc
    target = Path(downloaded) / subfolder
    if not target.is_dir():
        raise CheckpointNotFoundError(f"Model {name!r} has no subfolder {subfolder!r}.")
    return target
