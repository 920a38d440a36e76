"""`tokenizer.pad(...)`: pad already-encoded inputs (e.g. in a DataLoader collate function), as transformers does."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from .batch_encoding import BatchEncoding, _is_torch_tensor
from .padding import resolve_strategies

if TYPE_CHECKING:
    from .base import PreTrainedTokenizerFast


def _to_lists(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, (list, tuple)):
        return [item.tolist() if hasattr(item, "tolist") else item for item in value]
    return value


def _pad_row(tokenizer, row: dict, target: int | None, multiple, side: str, with_attention_mask: bool) -> dict:
    main = row[tokenizer.model_input_names[0]]
    length = len(main)
    if target is not None and multiple and target % multiple:
        target += multiple - target % multiple
    if with_attention_mask and "attention_mask" not in row:
        row["attention_mask"] = [1] * length
    if target is None or length >= target:
        return row
    missing = target - length
    pads = {
        "attention_mask": 0,
        "token_type_ids": tokenizer.pad_token_type_id,
        "special_tokens_mask": 1,
        tokenizer.model_input_names[0]: tokenizer.pad_token_id,
    }
    for key, pad_value in pads.items():
        if key not in row or (key == "attention_mask" and not with_attention_mask):
            continue
        values = list(row[key])
        row[key] = values + [pad_value] * missing if side == "right" else [pad_value] * missing + values
    return row


def pad_encoded_inputs(
    tokenizer: PreTrainedTokenizerFast,
    encoded_inputs: Any,
    padding,
    max_length: int | None,
    pad_to_multiple_of: int | None,
    padding_side: str | None,
    return_attention_mask: bool | None,
    return_tensors: str | None,
) -> BatchEncoding:
    if isinstance(encoded_inputs, (list, tuple)) and encoded_inputs and isinstance(encoded_inputs[0], Mapping):
        encoded_inputs = {key: [example[key] for example in encoded_inputs] for key in encoded_inputs[0].keys()}
    if not isinstance(encoded_inputs, Mapping):
        raise TypeError(
            f"pad() takes a dict/BatchEncoding of lists or a list of dicts, got {type(encoded_inputs).__name__}"
        )
    encoded_inputs = dict(encoded_inputs)
    main_name = tokenizer.model_input_names[0]
    if main_name not in encoded_inputs:
        raise ValueError(f"pad() needs {main_name!r} among the inputs, got keys {list(encoded_inputs)}")
    if return_attention_mask is None:
        return_attention_mask = "attention_mask" in tokenizer.model_input_names
    side = padding_side or tokenizer.padding_side
    if side not in ("left", "right"):
        raise ValueError(f"padding_side must be 'left' or 'right', got {side!r}")

    required = encoded_inputs[main_name]
    if required is None or len(required) == 0:
        if return_attention_mask:
            encoded_inputs["attention_mask"] = []
        return BatchEncoding(encoded_inputs, tensor_type=return_tensors)

    # Tensors in -> same kind of tensors out, unless return_tensors says otherwise.
    first = required[0]
    if isinstance(first, (list, tuple)):
        first = next((item[0] for item in required if len(item)), first)
    if _is_torch_tensor(first) or _is_torch_tensor(required):
        return_tensors = return_tensors or "pt"
    elif isinstance(first, np.ndarray) or isinstance(required, np.ndarray):
        return_tensors = return_tensors or "np"
    encoded_inputs = {key: _to_lists(value) for key, value in encoded_inputs.items()}

    strategies = resolve_strategies(padding, None, max_length, None, tokenizer.model_max_length)
    if strategies.padding != "do_not_pad":
        tokenizer._check_pad_token()
    required = encoded_inputs[main_name]

    if required and not isinstance(required[0], (list, tuple)):
        target = None
        if strategies.padding == "longest":
            target = len(required)
        elif strategies.padding == "max_length":
            target = strategies.max_length
        row = _pad_row(tokenizer, encoded_inputs, target, pad_to_multiple_of, side, return_attention_mask)
        return BatchEncoding(row, tensor_type=return_tensors)

    batch_size = len(required)
    for key, value in encoded_inputs.items():
        if len(value) != batch_size:
            raise ValueError(f"pad(): {key!r} has {len(value)} rows but {main_name!r} has {batch_size}")
    if strategies.padding == "longest":
        target = max(len(row) for row in required)
    elif strategies.padding == "max_length":
        target = strategies.max_length
    else:
        target = None
    output: dict[str, list] = {}
    for index in range(batch_size):
        row = {key: value[index] for key, value in encoded_inputs.items()}
        row = _pad_row(tokenizer, row, target, pad_to_multiple_of, side, return_attention_mask)
        for key, value in row.items():
            output.setdefault(key, []).append(value)
    return BatchEncoding(output, tensor_type=return_tensors)
