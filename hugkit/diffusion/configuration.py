"""Component configs as diffusers writes them: ``config.json`` / ``scheduler_config.json`` with ``_class_name``.

A diffusers component records every ``__init__`` argument (defaults filled in) as its config; ``from_config``
rebuilds one from such a dict, ignoring fields it does not take, so a config read from one scheduler can build
another (``DPMSolverMultistepScheduler.from_config(pipe.scheduler.config)``). Keys the new class does not take are
kept in its config ("hidden" fields, as diffusers keeps them) so saving and swapping back loses nothing, and fields
that were defaults in the source (``_use_default_values``) are dropped so the new class uses its own defaults.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable, ClassVar

logger = logging.getLogger(__name__)

# Written as "_diffusers_version" so diffusers reads hugkit's folders without its old-version compatibility paths.
DIFFUSERS_VERSION = "0.36.0"


class FrozenDict(dict):
    """A read-only dict whose keys also read as attributes (``scheduler.config.num_train_timesteps``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"This config has no field {name!r}; fields: {sorted(self)}") from None

    def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(
            "A component's config is frozen. Build a new component instead, e.g. "
            "`Scheduler.from_config(old.config, field=value)`."
        )

    __setitem__ = __delitem__ = __setattr__ = pop = popitem = setdefault = update = clear = _refuse

    def __deepcopy__(self, memo: dict) -> "FrozenDict":
        import copy

        return FrozenDict(copy.deepcopy(dict(self), memo))

    def __reduce__(self) -> tuple:
        return (FrozenDict, (dict(self),))


def register_to_config(init: Callable) -> Callable:
    """Decorate ``__init__`` so every argument (positional, keyword or default) lands in ``self.config``.
    Arguments starting with ``_`` are config bookkeeping: recorded, never passed to ``__init__``."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self: "ConfigMixin", *args: Any, **kwargs: Any) -> None:
        private = {k: v for k, v in kwargs.items() if k.startswith("_")}
        public = {k: v for k, v in kwargs.items() if not k.startswith("_")}
        ignore = set(type(self).ignore_for_config)
        names = [name for name in list(signature.parameters)[1:]
                 if signature.parameters[name].kind not in (inspect.Parameter.VAR_KEYWORD, inspect.Parameter.VAR_POSITIONAL)]
        recorded = dict(zip(names, args))
        for name in names:
            if name not in recorded:
                recorded[name] = public.get(name, signature.parameters[name].default)
        recorded = {k: v for k, v in recorded.items() if k not in ignore}
        defaulted = sorted(set(recorded) - set(public) - set(names[: len(args)]))
        if defaulted:
            recorded["_use_default_values"] = defaulted
        self.register_to_config(**private, **recorded)
        init(self, *args, **public)

    return wrapper


def _init_keys(cls: type) -> set[str]:
    parameters = inspect.signature(cls.__init__).parameters
    return {name for name, p in parameters.items() if name != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD}


class ConfigMixin:
    """What diffusers' components share: a frozen ``config`` from the init arguments, built from and saved to JSON."""

    config_name: ClassVar[str] = "config.json"
    ignore_for_config: ClassVar[tuple[str, ...]] = ()
    # Class names whose config fields this class tolerates silently (schedulers that can replace each other).
    _compatibles: ClassVar[list[str]] = []

    def register_to_config(self, **fields: Any) -> None:
        current = getattr(self, "_internal_dict", {})
        object.__setattr__(self, "_internal_dict", FrozenDict({**current, **fields}))

    @property
    def config(self) -> FrozenDict:
        return self._internal_dict

    # --- building ------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: dict[str, Any] | None = None, return_unused_kwargs: bool = False, **kwargs: Any) -> Any:
        """Build from a config dict (a component's ``.config``, or a loaded JSON); ``kwargs`` override fields."""
        if config is None:
            config = {}
        if not isinstance(config, dict):
            raise TypeError(
                f"{cls.__name__}.from_config expects a config dict (e.g. `other.config`), got {type(config).__name__}. "
                f"To read a folder, use {cls.__name__}.from_pretrained(path)."
            )
        init_kwargs, unused, hidden = cls._split_config(config, kwargs)
        component = cls(**init_kwargs)
        if "_class_name" in hidden:
            hidden["_class_name"] = cls.__name__
        component.register_to_config(**hidden)
        if return_unused_kwargs:
            return component, {**unused, **hidden}
        return component

    @classmethod
    def _split_config(cls, config: dict[str, Any], kwargs: dict[str, Any]) -> tuple[dict, dict, dict]:
        """(init arguments, unused fields, hidden fields) as diffusers' extract_init_dict computes them."""
        kwargs = dict(kwargs)
        defaulted = set(config.get("_use_default_values", []))
        source = {k: v for k, v in config.items() if k not in defaulted and k != "_use_default_values"}
        original = dict(source)
        expected = _init_keys(cls) - set(cls.ignore_for_config)
        tolerated = set()
        for name in cls._compatibles:
            other = _find_class(name)
            if other is not None:
                tolerated |= _init_keys(other)
        tolerated -= _init_keys(cls)
        source_class = _find_class(source.get("_class_name")) if isinstance(source.get("_class_name"), str) else None
        if source_class is not None and source_class is not cls:
            tolerated |= _init_keys(source_class) - expected
        fields = {k: v for k, v in source.items() if k not in tolerated and not k.startswith("_")
                  and k != "quantization_config"}
        init_kwargs = {}
        for key in expected:
            if key in kwargs:
                init_kwargs[key] = kwargs.pop(key)
                fields.pop(key, None)
            elif key in fields:
                init_kwargs[key] = fields.pop(key)
        if fields:
            logger.info("Config fields %s are not used by %s and were ignored.", sorted(fields), cls.__name__)
        hidden = {k: v for k, v in original.items() if k not in init_kwargs}
        return init_kwargs, {**fields, **kwargs}, hidden

    # --- files ---------------------------------------------------------------------------------
    @classmethod
    def load_config(
        cls, pretrained_model_name_or_path: str | os.PathLike, subfolder: str | None = None, **hub_kwargs: Any
    ) -> dict[str, Any]:
        """The component's JSON config from a folder (or the HF cache / hub, as transformers resolves them)."""
        from ..config import read_json
        from ..hub import resolve

        folder = resolve(pretrained_model_name_or_path, subfolder=subfolder or "", **hub_kwargs)
        return read_json(folder / cls.config_name, what=f"{cls.__name__} config")

    def to_json_string(self) -> str:
        fields = {k: _jsonable(v) for k, v in self.config.items() if k not in ("_use_default_values", "_ignore_files")}
        fields["_class_name"] = type(self).__name__
        fields["_diffusers_version"] = DIFFUSERS_VERSION
        return json.dumps(fields, indent=2, sort_keys=True) + "\n"

    def save_config(self, save_directory: str | os.PathLike) -> None:
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_config needs a folder, but {directory} is a file.")
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.config_name).write_text(self.to_json_string(), encoding="utf-8")

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays, tensors
        return value.tolist()
    if isinstance(value, float) and value in (float("inf"), float("-inf")):
        return value  # json writes Infinity, as diffusers does (lambda_min_clipped = -inf)
    return value


def _find_class(name: Any) -> type | None:
    """A hugkit diffusion class by its diffusers name, or None (imported lazily: the registry holds them)."""
    if not isinstance(name, str):
        return None
    from .registry import find_component_class

    return find_component_class(name)
