"""feature-extraction (token hidden states, transformers' format) and sentence-embeddings (pooled vectors).

``feature-extraction`` returns, per text, the nested list transformers returns: shape [1, tokens, hidden]
(or a tensor with ``return_tensors=True``). ``sentence-embeddings`` pools those states the way the
checkpoint's sentence-transformers files say (``modules.json``, ``1_Pooling/config.json``, a ``Normalize``
module, ``sentence_bert_config.json``'s max_seq_length), giving one vector per text: the same numbers
sentence-transformers gives. Without those files it mean-pools and does not normalise.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from .base import Pipeline
from .text_classification import _check_text

logger = logging.getLogger(__name__)


class FeatureExtractionPipeline(Pipeline):
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {}
        for name in ("return_tensors", "truncation", "max_length"):
            if name in kwargs:
                options[name] = kwargs.pop(name)
        tokenize_kwargs = kwargs.pop("tokenize_kwargs", None) or {}
        options.update({k: tokenize_kwargs[k] for k in ("truncation", "max_length") if k in tokenize_kwargs})
        return {**options, **super().check_kwargs(kwargs)}

    def validate_input(self, item: Any) -> Any:
        _check_text(item, "input")
        return item

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        encoded = self.tokenizer(
            items, truncation=options.get("truncation", True), max_length=options.get("max_length") or self.max_input_length()
        )
        names = [n for n in ("input_ids", "token_type_ids") if n in encoded]
        return [{name: encoded[name][i] for name in names} for i in range(len(items))]

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        return self.model(**batch).last_hidden_state

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        length = len(feature["input_ids"])
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        states = outputs[index, -length:] if left else outputs[index, :length]
        states = states.unsqueeze(0).float()
        return states.clone() if options.get("return_tensors") else states.tolist()


class SentenceEmbeddingPipeline(FeatureExtractionPipeline):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pooling, self.normalize, self.max_seq_length = _read_sentence_transformers_files(self.model.config)

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options = {}
        for name in ("normalize", "pooling"):
            if name in kwargs:
                options[name] = kwargs.pop(name)
        if options.get("pooling") not in (None, "mean", "cls", "max"):
            raise ValueError(f"pooling must be 'mean', 'cls' or 'max', got {options['pooling']!r}.")
        return {**options, **super().check_kwargs(kwargs)}

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        if "max_length" not in options and self.max_seq_length:
            options = {**options, "max_length": min(self.max_seq_length, self.max_input_length())}
        return super().preprocess(items, options)

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        states = self.model(**batch).last_hidden_state.float()
        mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
        pooling = options.get("pooling") or self.pooling
        if pooling == "cls":
            pooled = states[:, 0]
        elif pooling == "max":
            pooled = states.masked_fill(mask == 0, float("-inf")).amax(dim=1)
        else:
            pooled = (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        if options.get("normalize", self.normalize):
            pooled = self.torch.nn.functional.normalize(pooled, p=2, dim=-1)
        return pooled

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        vector = outputs[index]
        return vector.clone() if options.get("return_tensors") else vector.tolist()


def _read_sentence_transformers_files(config: Any) -> tuple[str, bool, int | None]:
    """(pooling mode, normalise?, max_seq_length) from a sentence-transformers checkpoint folder."""
    name = getattr(config, "_name_or_path", None)
    folder = None
    if name:
        from ..hub import resolve

        try:
            folder = resolve(name, local_files_only=True)
        except OSError:
            folder = None
    if folder is None or not (folder / "modules.json").is_file():
        logger.info("No sentence-transformers files found; using mean pooling without normalisation.")
        return "mean", False, None
    modules = json.loads((folder / "modules.json").read_text())
    pooling, normalize = "mean", False
    for module in modules:
        kind = module.get("type", "")
        if kind.endswith("Pooling"):
            pooling = _pooling_mode(folder / module.get("path", "1_Pooling") / "config.json")
        elif kind.endswith("Normalize"):
            normalize = True
    max_seq_length = None
    bert_config = folder / "sentence_bert_config.json"
    if bert_config.is_file():
        max_seq_length = json.loads(bert_config.read_text()).get("max_seq_length")
    return pooling, normalize, max_seq_length


def _pooling_mode(path: Path) -> str:
    if not path.is_file():
        return "mean"
    settings = json.loads(path.read_text())
    if settings.get("pooling_mode_cls_token"):
        return "cls"
    if settings.get("pooling_mode_max_tokens"):
        return "max"
    if settings.get("pooling_mode_mean_tokens", True):
        return "mean"
    raise ValueError(f"{path} asks for a pooling mode hugkit does not support yet: {settings}.")
