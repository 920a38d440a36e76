"""text-classification (alias sentiment-analysis), with transformers' call and output formats.

Output shapes follow transformers exactly, quirks included: without ``top_k`` a string gives
``[{'label', 'score'}]`` and a list gives one dict per text; with ``top_k`` (an int, or None for all labels)
each text gives a list of dicts sorted by score. Text pairs are ``{"text": ..., "text_pair": ...}``.
Unlike transformers, inputs longer than the model's limit are truncated instead of crashing.
"""

from __future__ import annotations

from typing import Any

from .base import Pipeline

_FUNCTIONS = ("softmax", "sigmoid", "none")
_UNSET = object()


class TextClassificationPipeline(Pipeline):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.id2label = self.model.config.id2label

    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        top_k = kwargs.pop("top_k", _UNSET)
        if kwargs.pop("return_all_scores", False):  # deprecated transformers spelling of top_k=None
            top_k = None
        if top_k is not _UNSET:
            if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
                raise ValueError(f"top_k must be a positive integer or None (all labels), got {top_k!r}.")
            options["top_k"] = top_k
        function = kwargs.pop("function_to_apply", None)
        if function is not None:
            name = str(getattr(function, "value", function)).lower()
            if name == "default":
                name = None
            elif name not in _FUNCTIONS:
                raise ValueError(f"function_to_apply must be one of {_FUNCTIONS}, got {function!r}.")
            options["function_to_apply"] = name
        for tokenizer_option in ("truncation", "max_length", "padding"):
            if tokenizer_option in kwargs:
                options[tokenizer_option] = kwargs.pop(tokenizer_option)
        return {**options, **super().check_kwargs(kwargs)}

    def is_single_input(self, inputs: Any) -> bool:
        return isinstance(inputs, (str, dict))

    def validate_input(self, item: Any) -> Any:
        if isinstance(item, dict):
            unknown = set(item) - {"text", "text_pair"}
            if "text" not in item or unknown:
                raise ValueError(
                    'A text pair must be a dict {"text": ..., "text_pair": ...}; '
                    f"got keys {sorted(item)}."
                )
            for key in item:
                _check_text(item[key], key)
            return item
        if isinstance(item, (list, tuple)) and len(item) == 2 and all(isinstance(x, str) for x in item):
            raise ValueError(
                'To classify a text pair, pass a dict {"text": "first", "text_pair": "second"}, not a list '
                f"of two strings ({item!r})."
            )
        _check_text(item, "input")
        return item

    def __call__(self, inputs: Any, **kwargs: Any) -> Any:
        result = super().__call__(inputs, **kwargs)
        # transformers wraps a single string's result in a list unless top_k was passed to this call
        # (a single text pair is not wrapped).
        if "top_k" not in kwargs and "return_all_scores" not in kwargs and isinstance(inputs, str):
            return [result]
        return result

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        truncation = options.get("truncation", True)
        max_length = options.get("max_length") or self.max_input_length()
        texts = [item["text"] if isinstance(item, dict) else item for item in items]
        pairs = [item.get("text_pair") if isinstance(item, dict) else None for item in items]
        if any(pair is not None for pair in pairs):
            features = []
            for text, pair in zip(texts, pairs):
                encoded = self.tokenizer(text, text_pair=pair, truncation=truncation, max_length=max_length)
                features.append(dict(encoded))
            return features
        encoded = self.tokenizer(texts, truncation=truncation, max_length=max_length)
        names = [n for n in ("input_ids", "token_type_ids") if n in encoded]
        return [{name: encoded[name][i] for name in names} for i in range(len(texts))]

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        logits = self.model(**batch).logits.float()
        function = options.get("function_to_apply") or self._default_function()
        if function == "softmax":
            return logits.softmax(-1).tolist()
        if function == "sigmoid":
            return logits.sigmoid().tolist()
        return logits.tolist()

    def _default_function(self) -> str:
        config = self.model.config
        if config.problem_type == "regression":
            return "none"
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        scores = outputs[index]
        if "top_k" not in options:
            best = max(range(len(scores)), key=scores.__getitem__)
            return {"label": self.id2label[best], "score": scores[best]}
        ranked = sorted(
            ({"label": self.id2label[i], "score": score} for i, score in enumerate(scores)),
            key=lambda entry: entry["score"],
            reverse=True,
        )
        top_k = options["top_k"]
        return ranked if top_k is None else ranked[:top_k]


def _check_text(value: Any, what: str) -> None:
    if not isinstance(value, str):
        raise TypeError(f"Expected the {what} to be a string, got {type(value).__name__}: {value!r:.80}.")
    if not value.strip():
        raise ValueError(
            f"The {what} is an empty string; there is nothing to classify. Remove empty inputs before calling the pipeline."
        )
