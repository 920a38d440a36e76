"""``stop_strings``: end a row once its text ends in one of the strings, with transformers' matching rule.

transformers (``StopStringCriteria``) matches on the strings of the sequence's tokens, and a stop string counts
only when it overlaps the sequence's last token: it may start in earlier tokens (or earlier in the last token) and
its end must fall inside the last token. Text the last token adds after the stop string does not matter.
Tokens are compared as bytes for byte-level and byte-fallback vocabularies (so a character split across tokens
still matches), and as text otherwise; each token's string is computed the way transformers computes it,
decoded behind a fixed prefix so that word-start markers ("Ġ", "▁") become the spaces they stand for.

Here the check is a short Python scan of each row's last few tokens after every step (token strings are cached),
instead of transformers' precomputed vocabulary tables.
"""

from __future__ import annotations

import json
from typing import Any

from ..tokenization.byte_level import bytes_to_unicode

_PREFIX = "abcdef"


def _has_type(state: Any, name: str) -> bool:
    if isinstance(state, dict):
        return state.get("type") == name or any(_has_type(value, name) for value in state.values())
    if isinstance(state, list):
        return any(_has_type(value, name) for value in state)
    return False


def matching_mode(tokenizer) -> str | None:
    """"byte_level", "byte_fallback" or None (text), from the tokenizer's decoder, as transformers decides."""
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    if decoder is None:
        return None
    if type(decoder).__name__ == "ByteLevel":
        return "byte_level"
    try:
        state = json.loads(decoder.__getstate__())
    except Exception:  # a decoder without a JSON state
        return None
    if _has_type(state, "ByteFallback"):
        return "byte_fallback"
    if _has_type(state, "ByteLevel"):
        return "byte_level"
    return None


class StopStringChecker:
    """Call with the rows' token ids so far; returns which rows now end in a stop string."""

    def __init__(self, stop_strings: str | list[str], tokenizer: Any) -> None:
        if isinstance(stop_strings, str):
            stop_strings = [stop_strings]
        if not isinstance(stop_strings, (list, tuple)) or not stop_strings or not all(
            isinstance(s, str) and s for s in stop_strings
        ):
            raise ValueError(f"stop_strings should be a non-empty string or a list of them, found {stop_strings!r}.")
        if tokenizer is None:
            raise ValueError(
                "stop_strings needs the model's tokenizer to read the generated text: pass it as "
                "generate(..., stop_strings=[...], tokenizer=tokenizer)."
            )
        self.tokenizer = tokenizer
        self.mode = matching_mode(tokenizer)
        as_bytes = self.mode is not None
        self.stop_strings = tuple(s.encode("utf-8") if as_bytes else s for s in stop_strings)
        self.longest = max(len(s) for s in self.stop_strings)
        self._empty = b"" if as_bytes else ""
        self._byte_decoder = {c: b for b, c in bytes_to_unicode().items()} if self.mode == "byte_level" else None
        self._prefix_tokens = tokenizer.convert_ids_to_tokens(tokenizer(_PREFIX, add_special_tokens=False)["input_ids"])
        self._strings: dict[int, Any] = {}

    def token_string(self, token_id: int):
        """What the token contributes to the text (bytes or str); None for an id outside the vocabulary."""
        cached = self._strings.get(token_id, self)
        if cached is not self:
            return cached
        token = self.tokenizer.convert_ids_to_tokens(token_id)
        value = None
        if token is not None:
            if self.mode == "byte_level" and all(c in self._byte_decoder for c in token):
                value = bytes(self._byte_decoder[c] for c in token)
            elif self.mode == "byte_fallback" and len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                try:
                    value = bytes([int(token[3:5], 16)])
                except ValueError:
                    value = None
            if value is None:
                text = self.tokenizer.convert_tokens_to_string([*self._prefix_tokens, token])
                start = text.find(_PREFIX)
                text = text[start + len(_PREFIX):] if start >= 0 else text
                value = text.encode("utf-8") if self.mode is not None else text
        self._strings[token_id] = value
        return value

    def row_matches(self, ids: list[int]) -> bool:
        last = self.token_string(ids[-1])
        if not last:
            return False
        pieces = [last]
        before = 0
        index = len(ids) - 2
        while before < self.longest - 1 and index >= 0:
            piece = self.token_string(ids[index])
            if piece is None:
                break
            pieces.append(piece)
            before += len(piece)
            index -= 1
        text = self._empty.join(reversed(pieces))
        start_of_last = len(text) - len(last)
        for stop in self.stop_strings:
            if text.find(stop, max(0, start_of_last - len(stop) + 1)) >= 0:
                return True
        return False

    def __call__(self, sequences, rows: list[int] | None = None) -> list[bool]:
        """``sequences``: (batch, length) ids so far (a tensor or lists); ``rows``: which rows to check (all)."""
        tail = sequences[:, -(self.longest + 1):] if hasattr(sequences, "shape") else [s[-(self.longest + 1):] for s in sequences]
        tail = tail.tolist() if hasattr(tail, "tolist") else tail
        wanted = range(len(tail)) if rows is None else set(rows)
        return [index in wanted and self.row_matches(ids) for index, ids in enumerate(tail)]
