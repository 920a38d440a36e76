"""AutoProcessor and AutoFeatureExtractor: the processor class a checkpoint folder names, as transformers picks it.

The folder's ``processor_config.json`` / ``preprocessor_config.json`` say which class made them
(``processor_class``, ``feature_extractor_type``, ``image_processor_type``), else ``config.json``'s ``model_type``
does. hugkit has Whisper's processor and feature extractor and CLIP's image processor; a folder with only a
tokenizer gets the tokenizer from ``AutoProcessor``, as in transformers. Nothing here imports torch until a class
is built.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

from .config import pop_hub_kwargs, read_json

# class name (as written in the folder's files) -> (module, hugkit class)
_FEATURE_EXTRACTORS = {
    "WhisperFeatureExtractor": ("hugkit.audio.feature_extraction_whisper", "WhisperFeatureExtractor"),
    "CLIPImageProcessor": ("hugkit.image_processing", "CLIPImageProcessor"),
    "CLIPFeatureExtractor": ("hugkit.image_processing", "CLIPImageProcessor"),
    "CLIPImageProcessorFast": ("hugkit.image_processing", "CLIPImageProcessor"),
}
_PROCESSORS = {
    "WhisperProcessor": ("hugkit.audio.processing_whisper", "WhisperProcessor"),
}
# model_type -> class names, for folders whose processor files do not name a class
_BY_MODEL_TYPE = {
    "whisper": ("WhisperProcessor", "WhisperFeatureExtractor"),
    "clip": (None, "CLIPImageProcessor"),
}


def _load(entry: tuple[str, str]) -> Any:
    module, name = entry
    return getattr(importlib.import_module(module), name)


def _folder_classes(folder: Path) -> tuple[str | None, str | None]:
    """(processor class, feature extractor / image processor class) named by the folder's files."""
    processor = extractor = None
    for name in ("processor_config.json", "preprocessor_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        settings = read_json(path, what="processor config")
        processor = processor or settings.get("processor_class")
        nested = settings.get("feature_extractor") or settings.get("image_processor") or {}
        extractor = extractor or settings.get("feature_extractor_type") or settings.get("image_processor_type")
        extractor = extractor or nested.get("feature_extractor_type") or nested.get("image_processor_type")
    if processor is None or extractor is None:
        config = folder / "config.json"
        if config.is_file():
            model_type = read_json(config, what="model config").get("model_type")
            by_type = _BY_MODEL_TYPE.get(model_type, (None, None))
            processor = processor or by_type[0]
            extractor = extractor or by_type[1]
    return processor, extractor


def _resolve(pretrained_model_name_or_path: Any, kwargs: dict[str, Any]) -> tuple[Path, dict[str, Any]]:
    from .hub import resolve

    hub_kwargs = pop_hub_kwargs(kwargs)
    return Path(resolve(pretrained_model_name_or_path, **hub_kwargs)), hub_kwargs


class AutoFeatureExtractor:
    """``AutoFeatureExtractor.from_pretrained(folder)``: the folder's feature extractor (or image processor)."""

    def __init__(self) -> None:
        raise EnvironmentError("Use AutoFeatureExtractor.from_pretrained(path), not AutoFeatureExtractor().")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        folder, _ = _resolve(pretrained_model_name_or_path, kwargs)
        _, extractor = _folder_classes(folder)
        if extractor is None:
            raise ValueError(
                f"{folder} has no preprocessor_config.json naming a feature extractor, and its config.json does not "
                f"say one either. hugkit's feature extractors: {', '.join(sorted(_FEATURE_EXTRACTORS))}."
            )
        if extractor not in _FEATURE_EXTRACTORS:
            raise ValueError(
                f"{folder} uses a {extractor}, which hugkit does not have. hugkit's feature extractors: "
                f"{', '.join(sorted(_FEATURE_EXTRACTORS))}."
            )
        return _load(_FEATURE_EXTRACTORS[extractor]).from_pretrained(folder, **kwargs)


class AutoProcessor:
    """``AutoProcessor.from_pretrained(folder)``: the folder's processor (``WhisperProcessor`` for Whisper), else
    its feature extractor, else its tokenizer."""

    def __init__(self) -> None:
        raise EnvironmentError("Use AutoProcessor.from_pretrained(path), not AutoProcessor().")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> Any:
        folder, hub_kwargs = _resolve(pretrained_model_name_or_path, kwargs)
        processor, extractor = _folder_classes(folder)
        if processor in _PROCESSORS:
            return _load(_PROCESSORS[processor]).from_pretrained(folder, **kwargs)
        has_tokenizer = any((folder / name).is_file() for name in (
            "tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model"))
        if processor is not None and (extractor is None or has_tokenizer):
            raise ValueError(
                f"{folder} uses a {processor}, which hugkit does not have. hugkit's processors: "
                f"{', '.join(sorted(_PROCESSORS))}. Load its parts with AutoTokenizer / AutoFeatureExtractor."
            )
        if extractor is not None:
            if extractor not in _FEATURE_EXTRACTORS:
                raise ValueError(
                    f"{folder} uses a {extractor}, which hugkit does not have. hugkit's feature extractors: "
                    f"{', '.join(sorted(_FEATURE_EXTRACTORS))}."
                )
            return _load(_FEATURE_EXTRACTORS[extractor]).from_pretrained(folder, **kwargs)
        if has_tokenizer:
            from .tokenization import AutoTokenizer

            return AutoTokenizer.from_pretrained(folder, **kwargs)
        raise ValueError(
            f"{folder} holds no processor, feature extractor or tokenizer files (processor_config.json, "
            "preprocessor_config.json, tokenizer.json, ...). Pass the folder of a complete checkpoint."
        )


__all__ = ["AutoFeatureExtractor", "AutoProcessor"]
