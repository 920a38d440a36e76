"""Pipeline base: input normalisation, length-sorted batching, lazy iteration, model/tokenizer loading.

A subclass implements three steps, as in transformers:
``preprocess(item) -> features`` (per input), ``forward(batch) -> model outputs`` (per batch),
``postprocess(one_output, item) -> result`` (per input). The base class sorts each chunk of inputs by
token length so batches carry little padding (batches of more than one, and not when sampling, where the order
decides the random draws), runs them under ``torch.inference_mode``, and returns results in the caller's order: a
single result for a single input, a list for a list, and a lazy generator for any other iterable (a generator, a
dataset, a ``KeyDataset``).
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterable, Iterator

from ..hub import CheckpointNotFoundError

logger = logging.getLogger(__name__)

# How many inputs of a lazy iterable are sorted together; bounded so results keep flowing.
_LAZY_CHUNK = 256


def load_model_and_tokenizer(
    model: Any,
    tokenizer: Any,
    *,
    head: str,
    task: str,
    device: Any,
    loading_kwargs: dict[str, Any],
    default_id: str | None,
):
    """Turn ``model``/``tokenizer`` arguments (ids, folders or objects) into loaded objects on ``device``."""
    from .. import auto
    from ..modeling_utils import resolve_device

    auto_class = {cls.task: cls for cls in auto._AutoModel.__subclasses__()}[head]
    device = _accelerator_index(device)
    target_device = resolve_device(device, loading_kwargs.pop("device_map", None))
    if isinstance(model, (str, os.PathLike)):
        model_source = model
        try:
            model = auto_class.from_pretrained(model_source, device=target_device, **loading_kwargs)
        except CheckpointNotFoundError as exc:
            if default_id and os.fspath(model_source) == default_id:
                raise CheckpointNotFoundError(
                    f"The {task!r} pipeline has no model built into hugkit, so it defaults to transformers' default "
                    f"{default_id!r}, which is not available here.\n{exc}\n"
                    f"Or pass model= a local checkpoint folder, e.g. pipeline({task!r}, model='path/to/model')."
                ) from exc
            raise
        if tokenizer is None:
            tokenizer = model_source
    else:
        if tokenizer is None:
            name = getattr(getattr(model, "config", None), "_name_or_path", None)
            if not name:
                raise ValueError(
                    "A model object was passed without a tokenizer, and its config does not say where it came from. "
                    "Pass tokenizer= as well."
                )
            tokenizer = name
        if device is not None:
            model = model.to(target_device)
    _check_head(model, task, head)
    if isinstance(tokenizer, (str, os.PathLike)):
        from ..tokenization import AutoTokenizer

        names = ("revision", "token", "cache_dir", "local_files_only", "gguf_file")
        hub = {k: loading_kwargs[k] for k in names if k in loading_kwargs}
        tokenizer = AutoTokenizer.from_pretrained(tokenizer, **hub)
    return model, tokenizer


def _accelerator_index(device: Any) -> Any:
    """transformers' reading of an integer ``device``: -1 is the CPU, ``n >= 0`` the n-th CUDA device, or the first
    other accelerator (MPS) there is, and the CPU on a machine without any (scripts written for a GPU still run)."""
    if not isinstance(device, int) or isinstance(device, bool) or device < 0:
        return device
    import torch

    if torch.cuda.is_available():
        return f"cuda:{device}"
    if torch.backends.mps.is_available():
        return f"mps:{device}"
    logger.info("device=%d asks for an accelerator, but this machine has none: running on the CPU.", device)
    return "cpu"


def _check_head(model: Any, task: str, head: str) -> None:
    """Refuse a model whose task head was not in the checkpoint: its predictions would be random."""
    fresh = getattr(model, "_newly_initialized_keys", [])
    if fresh:
        architectures = getattr(model.config, "architectures", None)
        raise ValueError(
            f"This checkpoint cannot be used for {task!r}: it has no trained {head} head "
            f"(its config lists architectures {architectures}, and these weights were missing: {fresh[:4]}). "
            "Use a checkpoint fine-tuned for this task, or the 'feature-extraction' task for a base model."
        )


def as_stream(inputs: Any) -> Iterator[Any] | None:
    """An iterator over ``inputs`` when it is a stream of inputs (a generator, a dataset, a ``KeyDataset``, any
    iterable; or an object with ``len()`` and integer indexing, like a torch ``Dataset``), else None."""
    if isinstance(inputs, (str, bytes, dict)):
        return None
    if isinstance(inputs, Iterable):
        return iter(inputs)
    if hasattr(inputs, "__len__") and hasattr(inputs, "__getitem__"):
        return (inputs[index] for index in range(len(inputs)))
    return None


def draw_loader_seed() -> None:
    """Draw the one random int64 transformers' pipelines draw when they iterate a list, dataset or generator (the
    torch DataLoader's base seed), so that the random draws that follow, and with them seeded sampling, are
    transformers' own."""
    import torch

    torch.empty((), dtype=torch.int64).random_()


class Pipeline:
    default_batch_size = 8

    def __init__(self, model: Any, tokenizer: Any, *, batch_size: int | None = None, task: str = "", **kwargs: Any):
        import torch

        self.model = model.eval()
        self.tokenizer = tokenizer
        self.task = task
        self.batch_size = batch_size or self.default_batch_size
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.device = model.device
        self.torch = torch
        self.call_defaults = self.check_kwargs(kwargs)

    # --- hooks for subclasses ----------------------------------------------------------------------
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        """Validate call-time keyword arguments; return them normalised. Unknown ones are an error."""
        if kwargs:
            raise TypeError(f"{type(self).__name__} got unexpected keyword arguments: {sorted(kwargs)}.")
        return {}

    def validate_input(self, item: Any) -> Any:
        return item

    def is_single_input(self, inputs: Any) -> bool:
        return isinstance(inputs, str)

    def preprocess(self, items: list[Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def forward(self, batch: dict[str, Any], options: dict[str, Any]) -> Any:
        raise NotImplementedError

    def postprocess(self, outputs: Any, index: int, feature: dict[str, Any], options: dict[str, Any]) -> Any:
        raise NotImplementedError

    # --- driving -----------------------------------------------------------------------------------
    def __call__(self, inputs: Any, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        options = {**self.call_defaults, **self.check_kwargs(kwargs)}
        size = batch_size or self.batch_size
        if inputs is None:
            raise ValueError(f"{self.task or 'This'} pipeline expects a string or a list of strings, got None.")
        if self.is_single_input(inputs):
            return self._run_chunk([self.validate_input(inputs)], size, options)[0]
        if isinstance(inputs, (list, tuple)):
            items = [self.validate_input(item) for item in inputs]
            if isinstance(inputs, list):
                draw_loader_seed()
            return self._run_chunk(items, size, options) if items else []
        stream = as_stream(inputs)
        if stream is not None:
            return self._run_lazily(stream, size, options)
        return self._run_chunk([self.validate_input(inputs)], size, options)[0]

    def keeps_order(self, options: dict[str, Any]) -> bool:
        """Whether inputs must run in the caller's order (sampling: the order decides which random draws each
        input gets, and transformers runs them in order). Otherwise batches of more than one are length-sorted."""
        return False

    def _run_lazily(self, iterator: Iterator[Any], batch_size: int, options: dict[str, Any]) -> Iterator[Any]:
        draw_loader_seed()
        chunk_size = max(_LAZY_CHUNK, batch_size)
        while True:
            chunk = []
            for item in iterator:
                chunk.append(self.validate_input(item))
                if len(chunk) == chunk_size:
                    break
            if not chunk:
                return
            yield from self._run_chunk(chunk, batch_size, options)

    def _run_chunk(self, items: list[Any], batch_size: int, options: dict[str, Any]) -> list[Any]:
        features = self.preprocess(items, options)
        if batch_size == 1 or self.keeps_order(options):
            order = list(range(len(features)))
        else:  # longest first: the biggest batch runs first (any memory error shows at once), padding stays small
            order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
        results: list[Any] = [None] * len(features)
        with self.torch.inference_mode():
            for start in range(0, len(order), batch_size):
                indices = order[start : start + batch_size]
                batch = self.collate([features[i] for i in indices])
                outputs = self.forward(batch, options)
                for position, index in enumerate(indices):
                    results[index] = self.postprocess(outputs, position, features[index], options)
        return self.gather(items, results, options)

    def gather(self, items: list[Any], results: list[Any], options: dict[str, Any]) -> list[Any]:
        """Combine per-feature results into per-input results (identity unless an input spans features)."""
        return results

    def collate(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        """Pad token id lists to the batch's longest, on the tokenizer's padding side."""
        import numpy as np

        longest = max(len(f["input_ids"]) for f in features)
        pad_id = self.tokenizer.pad_token_id or 0
        left = getattr(self.tokenizer, "padding_side", "right") == "left"
        names = [n for n in ("input_ids", "token_type_ids") if n in features[0]] + ["attention_mask"]
        arrays = {name: np.full((len(features), longest), pad_id if name == "input_ids" else 0, dtype=np.int64) for name in names}
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            span = slice(longest - n, longest) if left else slice(0, n)
            for name in names:
                arrays[name][row, span] = feature[name] if name in feature else 1
        return {name: self.torch.from_numpy(array).to(self.device) for name, array in arrays.items()}

    # --- helpers -----------------------------------------------------------------------------------
    def max_input_length(self) -> int:
        """The longest input the model takes: the tokenizer's limit, capped by the position embeddings."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        positions = getattr(self.model.config, "max_position_embeddings", None)
        if getattr(self.model.config, "model_type", "") in ("roberta", "xlm-roberta") and positions:
            positions -= 2  # RoBERTa's positions start after the padding index
        candidates = [x for x in (limit, positions) if isinstance(x, int) and 0 < x < 1_000_000]
        return min(candidates) if candidates else 512

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        self.model.save_pretrained(save_directory)
        self.tokenizer.save_pretrained(save_directory)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={self.model.config._name_or_path!r}, device={self.device})"
