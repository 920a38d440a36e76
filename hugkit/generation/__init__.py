"""Text generation: a token generator at the core; ``generate`` (transformers-compatible, decoder-only and
encoder-decoder models) folds over it.

Names are imported on first use, so ``GenerationConfig`` is available without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "GenerationConfig": "hugkit.generation.config",
    "GenerationMixin": "hugkit.generation.mixin",
    "generate_tokens": "hugkit.generation.loop",
    "generate": "hugkit.generation.loop",
    "GenerateDecoderOnlyOutput": "hugkit.generation.outputs",
    "GenerateEncoderDecoderOutput": "hugkit.generation.outputs",
    "GenerateBeamDecoderOnlyOutput": "hugkit.generation.outputs",
    "GenerateBeamEncoderDecoderOutput": "hugkit.generation.outputs",
    "LogitsProcessor": "hugkit.generation.logits",
    "LogitsProcessorList": "hugkit.generation.logits",
    "TemperatureLogitsWarper": "hugkit.generation.warpers",
    "TopKLogitsWarper": "hugkit.generation.warpers",
    "TopPLogitsWarper": "hugkit.generation.warpers",
    "MinPLogitsWarper": "hugkit.generation.warpers",
    "TopHLogitsWarper": "hugkit.generation.warpers",
    "TypicalLogitsWarper": "hugkit.generation.warpers",
    "EpsilonLogitsWarper": "hugkit.generation.warpers",
    "EtaLogitsWarper": "hugkit.generation.warpers",
    "StoppingCriteria": "hugkit.generation.stopping",
    "StoppingCriteriaList": "hugkit.generation.stopping",
    "MaxLengthCriteria": "hugkit.generation.stopping",
    "MaxTimeCriteria": "hugkit.generation.stopping",
    "EosTokenCriteria": "hugkit.generation.stopping",
    "StopStringCriteria": "hugkit.generation.stopping",
    "stream": "hugkit.generation.streaming",
    "astream": "hugkit.generation.streaming",
    "TextStream": "hugkit.generation.streaming",
    "AsyncTextStream": "hugkit.generation.streaming",
    "StreamResult": "hugkit.generation.streaming",
    "IncrementalDecoder": "hugkit.generation.streaming",
    "TextStreamer": "hugkit.generation.streaming",
    "TextIteratorStreamer": "hugkit.generation.streaming",
    "AsyncTextIteratorStreamer": "hugkit.generation.streaming",
    "BaseStreamer": "hugkit.generation.streaming",
    "GenerationMode": "hugkit.generation.config",
    "StopStringChecker": "hugkit.generation.stop_strings",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'hugkit.generation' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value
