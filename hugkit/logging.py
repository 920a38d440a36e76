"""``hugkit.logging``: transformers' logging switches (``transformers.logging``), over the standard ``"hugkit"`` logger.

Library modules log with ``logging.getLogger(__name__)`` and never configure anything, so an application's own
logging setup sees hugkit's records as it would any library's. The functions here are for the user who wants
transformers' behaviour instead: the first call attaches one stderr handler (``[hugkit] message``) to the
``"hugkit"`` logger, sets its level (``HUGKIT_VERBOSITY`` = debug/info/warning/error/critical, default warning) and,
like transformers, stops its records from also reaching the root logger (``enable_propagation()`` turns that back
on). ``disable_progress_bar()``/``enable_progress_bar()`` switch hugkit's progress bars (``HUGKIT_DISABLE_PROGRESS_BAR``
= 1 starts them off).

    import hugkit
    hugkit.logging.set_verbosity_error()      # only errors from hugkit
    logger = hugkit.logging.get_logger(__name__)
"""

from __future__ import annotations

import logging as _logging
import os
import sys
import threading
from typing import Any

CRITICAL = _logging.CRITICAL
FATAL = _logging.FATAL
ERROR = _logging.ERROR
WARNING = _logging.WARNING
WARN = _logging.WARN
INFO = _logging.INFO
DEBUG = _logging.DEBUG
NOTSET = _logging.NOTSET

log_levels = {"debug": DEBUG, "info": INFO, "warning": WARNING, "error": ERROR, "critical": CRITICAL}

_LIBRARY = "hugkit"
_lock = threading.Lock()
_default_handler: _logging.Handler | None = None
_progress_bar_enabled = os.getenv("HUGKIT_DISABLE_PROGRESS_BAR", "").strip().lower() not in ("1", "true", "yes", "on")


def _default_level() -> int:
    name = os.getenv("HUGKIT_VERBOSITY")
    if not name:
        return WARNING
    level = log_levels.get(name.strip().lower())
    if level is None:
        raise ValueError(f"HUGKIT_VERBOSITY should be one of {', '.join(log_levels)}, found {name!r}.")
    return level


def _root() -> _logging.Logger:
    return _logging.getLogger(_LIBRARY)


class _StderrHandler(_logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time (a redirected or captured stderr included)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:  # StreamHandler assigns it; the property always reads sys.stderr
        pass


def _configure() -> None:
    global _default_handler
    with _lock:
        if _default_handler is not None:
            return
        handler = _StderrHandler()
        handler.setFormatter(_logging.Formatter(f"[{_LIBRARY}] %(message)s"))
        _default_handler = handler
        root = _root()
        root.addHandler(handler)
        root.setLevel(_default_level())
        root.propagate = False


def _reset() -> None:
    """Undo ``_configure`` (the handler, the level, propagation): back to an unconfigured library logger."""
    global _default_handler
    with _lock:
        root = _root()
        if _default_handler is not None:
            root.removeHandler(_default_handler)
        _default_handler = None
        root.setLevel(NOTSET)
        root.propagate = True


def get_log_levels_dict() -> dict[str, int]:
    return dict(log_levels)


def get_logger(name: str | None = None) -> _logging.Logger:
    """The logger ``name`` (default: the library's own ``"hugkit"`` logger), with hugkit's default setup applied."""
    _configure()
    return _logging.getLogger(name if name is not None else _LIBRARY)


def get_verbosity() -> int:
    """The ``"hugkit"`` logger's effective level, e.g. ``hugkit.logging.WARNING`` (30)."""
    _configure()
    return _root().getEffectiveLevel()


def set_verbosity(verbosity: int) -> None:
    """Set the ``"hugkit"`` logger's level: ``hugkit.logging.DEBUG``/``INFO``/``WARNING``/``ERROR``/``CRITICAL``."""
    if isinstance(verbosity, str):
        level = log_levels.get(verbosity.lower())
        if level is None:
            raise ValueError(f"verbosity should be a logging level or one of {', '.join(log_levels)}, found {verbosity!r}.")
        verbosity = level
    if not isinstance(verbosity, int) or isinstance(verbosity, bool):
        raise TypeError(f"verbosity should be a logging level such as hugkit.logging.INFO, found {verbosity!r}.")
    _configure()
    _root().setLevel(verbosity)


def set_verbosity_debug() -> None:
    set_verbosity(DEBUG)


def set_verbosity_info() -> None:
    set_verbosity(INFO)


def set_verbosity_warning() -> None:
    set_verbosity(WARNING)


def set_verbosity_error() -> None:
    set_verbosity(ERROR)


def disable_default_handler() -> None:
    """Detach hugkit's stderr handler (records then go only where your own handlers send them)."""
    _configure()
    _root().removeHandler(_default_handler)


def enable_default_handler() -> None:
    _configure()
    _root().addHandler(_default_handler)


def add_handler(handler: _logging.Handler) -> None:
    _configure()
    if handler is None:
        raise ValueError("add_handler needs a logging.Handler, found None.")
    _root().addHandler(handler)


def remove_handler(handler: _logging.Handler) -> None:
    _configure()
    if handler is None or handler not in _root().handlers:
        raise ValueError(f"{handler!r} is not a handler of the 'hugkit' logger.")
    _root().removeHandler(handler)


def disable_propagation() -> None:
    """Keep hugkit's records from reaching the root logger (the default once configured, as in transformers)."""
    _configure()
    _root().propagate = False


def enable_propagation() -> None:
    """Let hugkit's records also reach the root logger's handlers (disable the default handler to avoid seeing
    them twice)."""
    _configure()
    _root().propagate = True


def enable_explicit_format() -> None:
    """``[LEVEL|module:line] time >> message`` on every handler of the ``"hugkit"`` logger."""
    _configure()
    formatter = _logging.Formatter("[%(levelname)s|%(filename)s:%(lineno)s] %(asctime)s >> %(message)s")
    for handler in _root().handlers:
        handler.setFormatter(formatter)


def reset_format() -> None:
    _configure()
    for handler in _root().handlers:
        handler.setFormatter(_logging.Formatter(f"[{_LIBRARY}] %(message)s") if handler is _default_handler else None)


# --- progress bars -----------------------------------------------------------------------------------------------
# Every progress bar in hugkit comes from ``tqdm`` below, so these switches reach all of them (the diffusion
# denoising bar, GPTQ calibration, ...), and, as in transformers, huggingface_hub's download bars too.


def is_progress_bar_enabled() -> bool:
    """Whether hugkit shows progress bars (does not touch logging)."""
    return _progress_bar_enabled


def _hub_progress_bars(enabled: bool) -> None:
    try:
        import huggingface_hub.utils as hub_utils
    except ImportError:  # huggingface_hub is optional (offline use needs none)
        return
    (hub_utils.enable_progress_bars if enabled else hub_utils.disable_progress_bars)()


def enable_progress_bar() -> None:
    global _progress_bar_enabled
    _progress_bar_enabled = True
    _hub_progress_bars(True)


def disable_progress_bar() -> None:
    """Hide every hugkit progress bar (and huggingface_hub's download bars), as transformers' switch does."""
    global _progress_bar_enabled
    _progress_bar_enabled = False
    _hub_progress_bars(False)


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(*args, **kwargs)``, disabled while progress bars are off; the one place hugkit makes a bar."""
    from tqdm.auto import tqdm as _tqdm

    if not _progress_bar_enabled:
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
