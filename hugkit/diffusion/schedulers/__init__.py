"""Schedulers, one algorithm per file, with diffusers' names, config fields and numbers.

Import a scheduler by name from here (``from hugkit.diffusion.schedulers import EulerDiscreteScheduler``); each
module is imported on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..registry import COMPONENT_CLASSES, SCHEDULER_NAMES

__all__ = [*SCHEDULER_NAMES, "SchedulerMixin", "SchedulerOutput"]


def __getattr__(name: str) -> Any:
    if name in ("SchedulerMixin", "SchedulerOutput"):
        return getattr(importlib.import_module(".base", __name__), name)
    if name in SCHEDULER_NAMES:
        return getattr(importlib.import_module(COMPONENT_CLASSES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
