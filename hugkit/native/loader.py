"""Build and load the native decode step (decode_step.cpp + hugkit/gguf/kernel.py's kernels) once per machine.

The compiled module is cached on disk under ``<hugkit cache>/native/<name>/`` (``HUGKIT_CACHE``, else
``~/.cache/hugkit``), where ``<name>`` hashes everything that goes into the build
(both C++ sources, the compiler flags, torch's and Python's versions): a second process imports the cached ``.so``
directly (no compiler, no ninja), and any change to a source builds a new module beside the old one.

Without a C++ compiler (``CXX``, else ``c++``), or when the build fails, or with ``HUGKIT_NATIVE=0``, ``load()``
returns None after one log line (INFO; nothing when switched off by the variable) and callers take the Python
modules' path: correct, only slower.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import logging
import os
import shutil
import sys
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("decode_step.cpp")
KERNELS_HEADER = "gguf_kernels.h"

_lock = threading.Lock()
_modules: dict[bool, object] = {}
_failed: dict[bool, str] = {}


def cache_dir() -> Path:
    """The hugkit cache folder, by the rule tokenization/cache.py uses: ``HUGKIT_CACHE``, else ~/.cache/hugkit."""
    root = os.environ.get("HUGKIT_CACHE")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "hugkit"


def _flags(vectorized: bool) -> list[str]:
    """kernel.py's own flags (so its matmuls compile to the same arithmetic and give the same bits as the Python
    path's kernel module): -O3, no floating-point contraction, AVX2 + FMA where torch reports AVX2 or better.
    No -fopenmp, as kernel.py: the kernels' at::parallel_for then runs serially, and the step shares work out between
    threads itself (decode_step.cpp's Pool explains why)."""
    import torch

    flags = ["-O3", "-ffp-contract=off"]
    if vectorized and torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512"):
        flags += ["-mavx2", "-mfma"]
    return flags


def _build_inputs(vectorized: bool) -> tuple[str, str, list[str]]:
    """(module name, kernel header text, flags): the name hashes every input of the build."""
    import torch

    from ..gguf.kernel import _SOURCE as kernel_source

    flags = _flags(vectorized)
    digest = hashlib.sha256()
    for part in (SOURCE.read_text(), kernel_source, " ".join(flags), torch.__version__, sys.version):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    name = f"hugkit_native_{digest.hexdigest()[:16]}{'' if vectorized else '_portable'}"
    return name, kernel_source, flags


def _import(name: str, path: Path):
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, str(path), loader=loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CXX", "c++"))


def _built_path(vectorized: bool, name: str | None = None) -> Path:
    """Where the module built from the current sources lives (or will): <cache>/native/<name>/<name>.so."""
    name = name or _build_inputs(vectorized)[0]
    return cache_dir() / "native" / name / f"{name}.so"


def _build(vectorized: bool):
    import torch  # noqa: F401  (the extension links against libtorch: load it first)

    name, kernel_source, flags = _build_inputs(vectorized)
    built = _built_path(vectorized, name)
    folder = built.parent
    if built.is_file():
        return _import(name, built)
    if _compiler() is None:
        raise FileNotFoundError(f"no C++ compiler found (CXX={os.environ.get('CXX', 'c++')!r} is not on PATH)")
    folder.mkdir(parents=True, exist_ok=True)
    # Sources are copied into the build folder: the build never depends on where hugkit is installed.
    (folder / KERNELS_HEADER).write_text(kernel_source)
    source = folder / SOURCE.name
    source.write_text(SOURCE.read_text())
    import fcntl

    from torch.utils.cpp_extension import load

    with open(folder / "build.lock", "w") as lock:  # another process building the same module: wait for it
        fcntl.flock(lock, fcntl.LOCK_EX)
        if built.is_file():
            return _import(name, built)
        logger.info("Building hugkit's native decode step (once per machine, about a minute).")
        return load(name=name, sources=[str(source)], extra_cflags=flags, extra_include_paths=[str(folder)],
                    build_directory=str(folder), verbose=False)


def load(vectorized: bool = True, wait: bool = True):
    """The compiled module (``DecodeStep``, ``group_mm``, ``group_mm_q8``, ``group_dequant``) or None when it cannot
    be built here (logged once per process). ``vectorized=False`` builds the portable C++ paths (no AVX2).

    ``wait=False`` (what ``generate`` uses) never blocks on a compiler: a module already built on this machine is
    imported, otherwise the build starts in a background thread (once per process) and None is returned until it
    has finished, so the first ``generate`` on a new machine decodes in Python instead of waiting a minute."""
    if vectorized in _modules or vectorized in _failed:
        return _modules.get(vectorized)
    if not wait:
        return _load_or_build_in_background(vectorized)
    with _lock:
        if vectorized in _modules or vectorized in _failed:
            return _modules.get(vectorized)
        _load_now(vectorized)
    return _modules.get(vectorized)


def _load_now(vectorized: bool) -> None:
    """Import or build the module into ``_modules``, or record why not in ``_failed``; the caller holds ``_lock``."""
    if os.environ.get("HUGKIT_NATIVE", "1") == "0":
        _failed[vectorized] = "HUGKIT_NATIVE=0"
        return
    try:
        _modules[vectorized] = _build(vectorized)
    except Exception as error:  # no compiler, no headers, a failed build: the Python path is correct
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        _failed[vectorized] = reason
        logger.info("Native decode step unavailable (%s); decoding with the Python modules.", reason)


_background: dict[bool, threading.Thread] = {}


def _load_or_build_in_background(vectorized: bool):
    if os.environ.get("HUGKIT_NATIVE", "1") == "0":
        return load(vectorized)  # records the switch without building anything
    if _built_path(vectorized).is_file():
        return load(vectorized)  # built before: importing takes milliseconds
    if vectorized in _background:  # building now; its thread holds _lock until done, so never wait on that here
        return None
    with _lock:
        if vectorized in _modules or vectorized in _failed:
            return _modules.get(vectorized)
        if vectorized not in _background:
            logger.info(
                "Building hugkit's native decode step in the background (once per machine, about a minute); "
                "decoding with the Python modules until it is ready."
            )
            thread = threading.Thread(target=_build_in_background, args=(vectorized,), daemon=True,
                                      name="hugkit-native-build")
            _background[vectorized] = thread
            thread.start()
    return None


def _build_in_background(vectorized: bool) -> None:
    with _lock:
        if vectorized not in _modules and vectorized not in _failed:
            _load_now(vectorized)


def wait_for_background_build(timeout: float | None = None) -> None:
    """Block until a background build started by ``load(wait=False)`` has finished (tests, benches)."""
    for thread in list(_background.values()):
        thread.join(timeout)


def reset() -> None:
    """Forget what this process loaded or failed to load (tests; the next ``load()`` tries again)."""
    wait_for_background_build()
    with _lock:
        _modules.clear()
        _failed.clear()
        _background.clear()


def unavailable_reason(vectorized: bool = True) -> str | None:
    """Why ``load()`` returned None in this process, or None if it did not (or was not called)."""
    return _failed.get(vectorized)
