"""WhisperProcessor: Whisper's feature extractor and tokenizer in one object, as transformers' ``WhisperProcessor``.

``processor(audio, sampling_rate=16000)`` gives ``input_features`` (the log-mel, see ``WhisperFeatureExtractor``);
``processor(text=...)`` gives token ids; both together give the features with the text's ids as ``labels``.
``processor.decode(ids, output_offsets=True)`` and the other Whisper decoding options come from
``hugkit.audio.whisper_decoding.WhisperTokenizer``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .feature_extraction_whisper import PREPROCESSOR_CONFIG_NAME, WhisperFeatureExtractor
from .whisper_decoding import WhisperTokenizer

# Keyword arguments that belong to the feature extractor when a call holds both audio and text.
_FEATURE_ARGUMENTS = {"truncation", "pad_to_multiple_of", "return_tensors", "return_attention_mask", "padding",
                      "max_length", "do_normalize", "device"}
_TEXT_ONLY = {"device", "do_normalize"}


class WhisperProcessor:
    """Feature extractor + tokenizer for a Whisper checkpoint."""

    attributes = ["feature_extractor", "tokenizer"]
    feature_extractor_class = "WhisperFeatureExtractor"
    tokenizer_class = "WhisperTokenizer"

    def __init__(self, feature_extractor: WhisperFeatureExtractor, tokenizer: Any) -> None:
        if not isinstance(feature_extractor, WhisperFeatureExtractor):
            raise TypeError(
                f"feature_extractor should be a hugkit WhisperFeatureExtractor, found {type(feature_extractor).__name__}."
            )
        self.feature_extractor = feature_extractor
        self.tokenizer = WhisperTokenizer.from_tokenizer(tokenizer)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any) -> "WhisperProcessor":
        """From a Whisper folder (or hub id): ``preprocessor_config.json`` and the tokenizer files. ``language=``,
        ``task=`` and ``predict_timestamps=`` go to the tokenizer; other keyword arguments are hub arguments
        (``revision``, ``cache_dir``, ``local_files_only``, ``token``)."""
        from ..config import pop_hub_kwargs
        from ..hub import resolve

        hub_kwargs = pop_hub_kwargs(kwargs)
        tokenizer_kwargs = {key: kwargs.pop(key) for key in ("language", "task", "predict_timestamps") if key in kwargs}
        if kwargs:
            raise TypeError(
                f"WhisperProcessor.from_pretrained got unexpected keyword arguments {sorted(kwargs)}; it takes "
                "language, task, predict_timestamps and the hub arguments (revision, cache_dir, local_files_only, "
                "token)."
            )
        folder = Path(resolve(pretrained_model_name_or_path, **hub_kwargs))
        feature_extractor = WhisperFeatureExtractor.from_pretrained(folder)
        tokenizer = WhisperTokenizer.from_pretrained(folder, **tokenizer_kwargs)
        return cls(feature_extractor, tokenizer)

    def save_pretrained(self, save_directory: str | os.PathLike) -> list[str]:
        directory = Path(save_directory)
        written = self.feature_extractor.save_pretrained(directory)
        # transformers records the processor class in the feature extractor's file.
        path = directory / PREPROCESSOR_CONFIG_NAME
        settings = json.loads(path.read_text(encoding="utf-8"))
        settings["processor_class"] = "WhisperProcessor"
        path.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        saved = self.tokenizer.save_pretrained(directory)
        return [*written, *(str(p) for p in (saved or []))]

    # --- calling ------------------------------------------------------------------------------------
    def __call__(self, audio: Any = None, *, text: Any = None, sampling_rate: int | None = None, **kwargs: Any) -> Any:
        """Features of ``audio`` (mono samples at the feature extractor's rate), ids of ``text``, or both (then
        the ids are the features' ``labels``)."""
        if audio is None and text is None:
            raise ValueError(
                "WhisperProcessor needs audio (samples at 16 kHz: processor(samples, sampling_rate=16000)) or "
                "text=..., or both."
            )
        if audio is not None and text is not None:
            audio_kwargs = {k: v for k, v in kwargs.items() if k in _FEATURE_ARGUMENTS}
            text_kwargs = {k: v for k, v in kwargs.items() if k not in _TEXT_ONLY}
        else:
            audio_kwargs = text_kwargs = kwargs
        features = None
        if audio is not None:
            features = self.feature_extractor(audio, sampling_rate=sampling_rate, **audio_kwargs)
        if text is None:
            return features
        encoding = self.tokenizer(text, **text_kwargs)
        if features is None:
            return encoding
        features["labels"] = encoding["input_ids"]
        return features

    def decode(self, *args: Any, **kwargs: Any) -> Any:
        return self.tokenizer.decode(*args, **kwargs)

    def batch_decode(self, *args: Any, **kwargs: Any) -> Any:
        return self.tokenizer.batch_decode(*args, **kwargs)

    def get_decoder_prompt_ids(self, task: str | None = None, language: str | None = None,
                               no_timestamps: bool = True) -> list[tuple[int, int]]:
        return self.tokenizer.get_decoder_prompt_ids(task=task, language=language, no_timestamps=no_timestamps)

    def get_prompt_ids(self, text: str, return_tensors: str | None = "np") -> Any:
        return self.tokenizer.get_prompt_ids(text, return_tensors=return_tensors)

    @property
    def model_input_names(self) -> list[str]:
        return list(dict.fromkeys([*self.feature_extractor.model_input_names, *self.tokenizer.model_input_names]))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}:\n- feature_extractor: {self.feature_extractor!r}\n"
                f"- tokenizer: {type(self.tokenizer).__name__}(name_or_path={self.tokenizer.name_or_path!r})")


__all__ = ["WhisperProcessor"]
