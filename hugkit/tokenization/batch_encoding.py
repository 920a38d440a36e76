"""BatchEncoding: the dict a tokenizer call returns, with attribute access and the engine's alignment helpers."""

from __future__ import annotations

from typing import Any

import numpy as np


def _is_torch_tensor(value: Any) -> bool:
    # Checked by type name so this module never imports torch.
    return type(value).__module__.startswith("torch") and hasattr(value, "to") and hasattr(value, "dtype")


def to_tensor(value: Any, tensor_type: str | None):
    """Convert a (possibly nested) list or array to `tensor_type` ("pt", "np" or None to leave it)."""
    if tensor_type is None:
        return value
    if tensor_type == "np":
        return value if isinstance(value, np.ndarray) else np.asarray(value)
    if tensor_type == "pt":
        import torch

        if isinstance(value, np.ndarray) and value.dtype != object:
            return torch.from_numpy(value)
        if _is_torch_tensor(value):
            return value
        array = np.asarray(value)
        if array.dtype == object:
            raise ValueError(
                "Unable to create a tensor from sequences of different lengths; "
                "pass padding=True (or padding='max_length') together with truncation=True."
            )
        return torch.from_numpy(np.ascontiguousarray(array))
    raise ValueError(f"return_tensors must be None, 'pt' or 'np', got {tensor_type!r}")


class BatchEncoding(dict):
    """Output of a tokenizer call: `input_ids`, `attention_mask`, ... as keys and as attributes.

    `encodings` holds the engine's `tokenizers.Encoding` objects (one per row) behind `tokens()`, `word_ids()`,
    `sequence_ids()` and the char/word/token mapping helpers. When hugkit padded the rows itself (the fast path),
    the encodings are padded the same way on first access, so their positions line up with `input_ids`.
    """

    def __init__(
        self,
        data: dict | None = None,
        encodings: list | None = None,
        tensor_type: str | None = None,
        prepend_batch_axis: bool = False,
        n_sequences: int | None = None,
        pending_padding: dict | None = None,
    ):
        super().__init__(data or {})
        self._encodings = encodings
        self._pending_padding = pending_padding
        if n_sequences is None and encodings:
            n_sequences = encodings[0].n_sequences
        self._n_sequences = n_sequences
        if tensor_type is not None:
            self.convert_to_tensors(tensor_type, prepend_batch_axis=prepend_batch_axis)

    # ------------------------------------------------------------------ dict / attribute access

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"BatchEncoding has no key or attribute {name!r}; keys: {list(self.keys())}") from None

    def __getitem__(self, item):
        if isinstance(item, str):
            return dict.__getitem__(self, item)
        if isinstance(item, int):
            if self.encodings is None:
                raise KeyError("Indexing by row needs the engine encodings, which this BatchEncoding does not hold.")
            return self.encodings[item]
        if isinstance(item, slice):
            return {key: value[item] for key, value in self.items()}
        raise KeyError(f"Use a key (str), a row (int) or a slice; got {type(item).__name__}")

    def __getstate__(self):
        return {"data": dict(self), "encodings": self.encodings, "n_sequences": self._n_sequences}

    def __setstate__(self, state):
        dict.update(self, state["data"])
        self._encodings = state["encodings"]
        self._pending_padding = None
        self._n_sequences = state["n_sequences"]

    def __reduce__(self):
        return (self.__class__, (), self.__getstate__())

    # ------------------------------------------------------------------ engine encodings

    @property
    def is_fast(self) -> bool:
        return self._encodings is not None

    @property
    def n_sequences(self) -> int | None:
        return self._n_sequences

    @property
    def encodings(self) -> list | None:
        if self._pending_padding is not None and self._encodings is not None:
            padding = self._pending_padding
            self._pending_padding = None
            for encoding in self._encodings:
                encoding.pad(
                    padding["length"],
                    direction=padding["direction"],
                    pad_id=padding["pad_id"],
                    pad_type_id=padding["pad_type_id"],
                    pad_token=padding["pad_token"],
                )
        return self._encodings

    def _encoding(self, batch_index: int):
        if self.encodings is None:
            raise ValueError("This BatchEncoding holds no engine encodings (it was built by pad() or from a dict).")
        return self.encodings[batch_index]

    @staticmethod
    def _split_index(batch_or_index: int, index: int | None) -> tuple[int, int]:
        return (0, batch_or_index) if index is None else (batch_or_index, index)

    def tokens(self, batch_index: int = 0) -> list[str]:
        return self._encoding(batch_index).tokens

    def word_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).word_ids

    def words(self, batch_index: int = 0) -> list[int | None]:
        return self.word_ids(batch_index)

    def sequence_ids(self, batch_index: int = 0) -> list[int | None]:
        return self._encoding(batch_index).sequence_ids

    def token_to_sequence(self, batch_or_token_index: int, token_index: int | None = None) -> int:
        batch_index, token_index = self._split_index(batch_or_token_index, token_index)
        if token_index < 0:
            token_index += len(self._encoding(batch_index).ids)
        return self._encoding(batch_index).token_to_sequence(token_index)

    def token_to_word(self, batch_or_token_index: int, token_index: int | None = None) -> int:
        batch_index, token_index = self._split_index(batch_or_token_index, token_index)
        if token_index < 0:
            token_index += len(self._encoding(batch_index).ids)
        return self._encoding(batch_index).token_to_word(token_index)

    def word_to_tokens(self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0):
        batch_index, word_index = self._split_index(batch_or_word_index, word_index)
        return self._encoding(batch_index).word_to_tokens(word_index, sequence_index)

    def token_to_chars(self, batch_or_token_index: int, token_index: int | None = None):
        batch_index, token_index = self._split_index(batch_or_token_index, token_index)
        return self._encoding(batch_index).token_to_chars(token_index)

    def char_to_token(self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0):
        batch_index, char_index = self._split_index(batch_or_char_index, char_index)
        return self._encoding(batch_index).char_to_token(char_index, sequence_index)

    def word_to_chars(self, batch_or_word_index: int, word_index: int | None = None, sequence_index: int = 0):
        batch_index, word_index = self._split_index(batch_or_word_index, word_index)
        return self._encoding(batch_index).word_to_chars(word_index, sequence_index)

    def char_to_word(self, batch_or_char_index: int, char_index: int | None = None, sequence_index: int = 0):
        batch_index, char_index = self._split_index(batch_or_char_index, char_index)
        return self._encoding(batch_index).char_to_word(char_index, sequence_index)

    # ------------------------------------------------------------------ tensors and devices

    def convert_to_tensors(self, tensor_type: str | None = None, prepend_batch_axis: bool = False) -> BatchEncoding:
        if tensor_type is None:
            return self
        tensor_type = getattr(tensor_type, "value", tensor_type)
        for key, value in list(self.items()):
            if prepend_batch_axis:
                value = [value]
            try:
                dict.__setitem__(self, key, to_tensor(value, tensor_type))
            except ValueError as error:
                raise ValueError(f"Could not turn {key!r} into a tensor: {error}") from None
        return self

    def to(self, device, *, non_blocking: bool = False) -> BatchEncoding:
        """Move every torch tensor to `device` (in place) and return self."""
        for key, value in list(self.items()):
            if _is_torch_tensor(value):
                dict.__setitem__(self, key, value.to(device=device, non_blocking=non_blocking))
        return self

    def __repr__(self) -> str:
        return dict.__repr__(self)
