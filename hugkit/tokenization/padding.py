"""Padding/truncation strategies, and turning engine encodings into padded lists or arrays.

The engine only truncates; hugkit pads. Padding in numpy costs one flat copy of the ids per field instead of
one padded Python list per row and field, which is most of what a wrapper adds on top of the Rust encoder.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

# transformers' sentinels: a model_max_length above LARGE_INTEGER means "no limit".
VERY_LARGE_INTEGER = int(1e30)
LARGE_INTEGER = int(1e20)

PADDING_STRATEGIES = ("longest", "max_length", "do_not_pad")
TRUNCATION_STRATEGIES = ("longest_first", "only_first", "only_second", "do_not_truncate")


@dataclass(frozen=True)
class Strategies:
    padding: str  # "longest" | "max_length" | "do_not_pad"
    truncation: str  # "longest_first" | "only_first" | "only_second" | "do_not_truncate"
    max_length: int | None


def resolve_strategies(padding, truncation, max_length, pad_to_multiple_of, model_max_length: int) -> Strategies:
    """Same rules as transformers' `_get_padding_truncation_strategies`."""
    padding = getattr(padding, "value", padding)  # accept transformers' enums too
    truncation = getattr(truncation, "value", truncation)
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 0):
        raise ValueError(f"max_length must be a non-negative int or None, got {max_length!r}")
    # Only max_length given: transformers truncates to it.
    if max_length is not None and padding is False and truncation is None:
        truncation = "longest_first"

    if padding is True:
        padding_strategy = "longest"
    elif padding is False or padding is None:
        padding_strategy = "do_not_pad"
    elif isinstance(padding, str) and padding in PADDING_STRATEGIES:
        padding_strategy = padding
    else:
        raise ValueError(f"padding must be True, False or one of {PADDING_STRATEGIES}, got {padding!r}")

    if truncation is True:
        truncation_strategy = "longest_first"
    elif truncation is False or truncation is None:
        truncation_strategy = "do_not_truncate"
    elif isinstance(truncation, str) and truncation in TRUNCATION_STRATEGIES:
        truncation_strategy = truncation
    else:
        raise ValueError(f"truncation must be True, False or one of {TRUNCATION_STRATEGIES}, got {truncation!r}")

    if max_length is None:
        unlimited = model_max_length > LARGE_INTEGER
        if padding_strategy == "max_length":
            if unlimited:
                padding_strategy = "do_not_pad"
            else:
                max_length = model_max_length
        if truncation_strategy != "do_not_truncate":
            if unlimited:
                truncation_strategy = "do_not_truncate"
            else:
                max_length = model_max_length

    if pad_to_multiple_of is not None and (not isinstance(pad_to_multiple_of, int) or pad_to_multiple_of <= 0):
        raise ValueError(f"pad_to_multiple_of must be a positive int or None, got {pad_to_multiple_of!r}")
    if (
        truncation_strategy != "do_not_truncate"
        and padding_strategy != "do_not_pad"
        and pad_to_multiple_of is not None
        and max_length is not None
        and max_length % pad_to_multiple_of != 0
    ):
        raise ValueError(
            f"Truncation and padding are both activated but truncation length ({max_length}) is not a multiple "
            f"of pad_to_multiple_of ({pad_to_multiple_of})."
        )
    return Strategies(padding_strategy, truncation_strategy, max_length)


def padded_length(lengths: list[int], strategy: str, max_length: int | None, pad_to_multiple_of: int | None):
    """Target row length, or None when no padding applies."""
    if strategy == "do_not_pad" or not lengths:
        return None
    target = max(lengths) if strategy == "longest" else max_length
    if target is None:
        return None
    if pad_to_multiple_of and target % pad_to_multiple_of:
        target += pad_to_multiple_of - target % pad_to_multiple_of
    return target


@dataclass(frozen=True)
class PadSpec:
    length: int | None  # None: no padding
    side: str
    pad_id: int
    pad_type_id: int


# output field -> the tokenizers.Encoding attribute holding it
_FIELD_SOURCES = {
    "input_ids": "ids",
    "token_type_ids": "type_ids",
    "special_tokens_mask": "special_tokens_mask",
    "offset_mapping": "offsets",
}


def _pad_value(field: str, spec: PadSpec):
    return {
        "input_ids": spec.pad_id,
        "token_type_ids": spec.pad_type_id,
        "attention_mask": 0,
        "special_tokens_mask": 1,
        "offset_mapping": (0, 0),
    }[field]


def assemble(
    encodings: list,
    rows_ids: list[list[int]],
    fields: list[str],
    spec: PadSpec,
    as_arrays: bool,
    zero_type_ids: bool = False,
) -> dict:
    """Build {field: rows} from unpadded encodings (and their ids, already read); numpy arrays when `as_arrays`.

    `zero_type_ids` says every token type id is 0, so they need not be read from the engine.
    """
    lengths = [len(row) for row in rows_ids]
    target = spec.length
    longest = max(lengths, default=0)
    uniform = target is not None and longest <= target
    if target is None and lengths and min(lengths) == longest:
        target, uniform = longest, True
    if as_arrays and uniform:
        return _assemble_arrays(encodings, rows_ids, lengths, fields, spec, target, zero_type_ids)
    return _assemble_lists(encodings, rows_ids, lengths, fields, spec, target if spec.length is not None else None,
                           zero_type_ids, as_arrays)


def _row_values(encodings, rows_ids, field, zero_type_ids, lengths):
    if field == "input_ids":
        return rows_ids
    if field == "token_type_ids" and zero_type_ids:
        return [[0] * length for length in lengths]
    if field == "attention_mask":
        return [[1] * length for length in lengths]
    attribute = _FIELD_SOURCES[field]
    return [getattr(encoding, attribute) for encoding in encodings]


def _assemble_lists(encodings, rows_ids, lengths, fields, spec, target, zero_type_ids, as_arrays):
    output = {}
    for field in fields:
        if field == "length":
            output[field] = [max(length, target or 0) for length in lengths]
            continue
        rows = _row_values(encodings, rows_ids, field, zero_type_ids, lengths)
        if target is not None:
            pad = [_pad_value(field, spec)]
            if spec.side == "right":
                rows = [row + pad * (target - len(row)) if len(row) < target else row for row in rows]
            else:
                rows = [pad * (target - len(row)) + row if len(row) < target else row for row in rows]
        output[field] = rows
    if as_arrays:
        ragged = len({len(row) for row in output.get("input_ids", [])}) > 1
        if ragged:
            raise ValueError(
                "Unable to create tensors from sequences of different lengths; "
                "pass padding=True (or padding='max_length') together with truncation=True."
            )
        output = {field: np.asarray(rows, dtype=np.int64) for field, rows in output.items()}
    return output


def _assemble_arrays(encodings, rows_ids, lengths, fields, spec, target, zero_type_ids):
    batch = len(rows_ids)
    total = sum(lengths)
    full = total == batch * target  # no padding position: skip the mask entirely (the common single-text case)
    mask = None
    if not full:
        lengths_array = np.asarray(lengths, dtype=np.int64)
        positions = np.arange(target, dtype=np.int64)[None, :]
        if spec.side == "right":
            mask = positions < lengths_array[:, None]
        else:
            mask = positions >= (target - lengths_array)[:, None]

    def scatter(flat_values: np.ndarray, pad_value: int, shape: tuple = ()) -> np.ndarray:
        if full:
            return flat_values.reshape(batch, target, *shape)
        out = np.full((batch, target, *shape), pad_value, dtype=np.int64)
        out[mask] = flat_values
        return out

    output = {}
    for field in fields:
        if field == "attention_mask":
            output[field] = np.ones((batch, target), dtype=np.int64) if full else mask.astype(np.int64)
        elif field == "length":
            output[field] = np.full(batch, target, dtype=np.int64)
        elif field == "token_type_ids" and zero_type_ids:
            output[field] = scatter(np.zeros(total, dtype=np.int64), spec.pad_type_id)
        elif field == "offset_mapping":
            flat = np.fromiter(
                itertools.chain.from_iterable(itertools.chain.from_iterable(e.offsets for e in encodings)),
                dtype=np.int64, count=2 * total,
            ).reshape(total, 2)
            output[field] = scatter(flat, 0, (2,))
        else:
            source = rows_ids if field == "input_ids" else (getattr(e, _FIELD_SOURCES[field]) for e in encodings)
            flat = np.fromiter(itertools.chain.from_iterable(source), dtype=np.int64, count=total)
            output[field] = scatter(flat, _pad_value(field, spec))
    return output
