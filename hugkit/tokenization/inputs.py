"""Check what a tokenizer call was given and shape it into the engine's batch form.

Accepted, as in transformers: a string; a list of strings (a batch); a pair (`text`, `text_pair`); a batch of
pairs (`text` and `text_pair` lists, or `text` as a list of 2-item lists/tuples); and with
`is_split_into_words=True` a list of words or a batch of such lists. Anything else is a TypeError that names
what was expected and what was found.
"""

from __future__ import annotations

from typing import Any

_EXPECTED = (
    "a str, a list of str (a batch), or with is_split_into_words=True a list of str (one pre-split text) "
    "or a list of lists of str"
)


def _describe(value: Any) -> str:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(value).__name__} {text}"


def _check_words(words: Any, where: str) -> list[str]:
    if not isinstance(words, (list, tuple)):
        raise TypeError(f"{where} must be a list of str (pre-split words), got {_describe(words)}")
    for word in words:
        if not isinstance(word, str):
            raise TypeError(f"{where} must contain only str words, found {_describe(word)}")
    return list(words)


def _check_text(text: Any, where: str) -> str:
    if not isinstance(text, str):
        raise TypeError(f"{where} must be a str, got {_describe(text)}")
    return text


def _check_batch_of_text(batch: Any, where: str) -> list[str]:
    # A type check per item (not per character): cheap even for large batches.
    for index, item in enumerate(batch):
        if type(item) is not str and not isinstance(item, str):
            raise TypeError(f"{where}[{index}] must be a str, got {_describe(item)}")
    return batch if isinstance(batch, list) else list(batch)


def prepare_batch(text: Any, text_pair: Any, is_split_into_words: bool) -> tuple[list, bool, bool]:
    """Return (engine inputs, is_batched, has_pairs).

    Engine inputs are a list of str / list[str] items, or of 2-tuples of them for pairs.
    """
    if text is None:
        raise TypeError(f"text must be {_EXPECTED}; got None")
    if not isinstance(text, (str, list, tuple)):
        raise TypeError(f"text must be {_EXPECTED}; got {_describe(text)}")

    if is_split_into_words:
        is_batched = isinstance(text, (list, tuple)) and len(text) > 0 and isinstance(text[0], (list, tuple))
        if isinstance(text, str):
            raise TypeError("With is_split_into_words=True, text must be a list of words (str), not a str")
        if not is_batched:
            first = _check_words(text, "text")
            if text_pair is None or (isinstance(text_pair, (list, tuple)) and not text_pair):
                return [first], False, False
            return [(first, _check_words(text_pair, "text_pair"))], False, True
        batch = [_check_words(words, f"text[{index}]") for index, words in enumerate(text)]
        if text_pair is None:
            return batch, True, False
        pairs = _pair_batch(text_pair, len(batch))
        return [(words, _check_words(other, f"text_pair[{index}]")) for index, (words, other) in
                enumerate(zip(batch, pairs))], True, True

    if isinstance(text, str):
        # transformers drops an empty pair ("") for a single text: "text" and ("text", "") encode alike.
        if text_pair is None or (isinstance(text_pair, str) and not text_pair):
            return [text], False, False
        return [(text, _check_text(text_pair, "text_pair"))], False, True

    # A list or tuple: a batch of texts, or a batch of [text, pair] items.
    if text_pair is None:
        if len(text) > 0 and isinstance(text[0], (list, tuple)):
            batch = []
            for index, item in enumerate(text):
                if not isinstance(item, (list, tuple)) or len(item) != 2:
                    raise TypeError(
                        f"text[{index}] must be a pair (text, text_pair) when text is a batch of pairs, "
                        f"got {_describe(item)}; for pre-split words pass is_split_into_words=True"
                    )
                batch.append((_check_text(item[0], f"text[{index}][0]"), _check_text(item[1], f"text[{index}][1]")))
            return batch, True, True
        return _check_batch_of_text(text, "text"), True, False
    texts = _check_batch_of_text(text, "text")
    pairs = _check_batch_of_text(_pair_batch(text_pair, len(texts)), "text_pair")
    return list(zip(texts, pairs)), True, True


def to_python(value: Any) -> Any:
    """Tensors and arrays (of token ids) to nested lists of ints; everything else unchanged."""
    if hasattr(value, "tolist") and not isinstance(value, (list, tuple, str)):
        return value.tolist()
    return value


def _pair_batch(text_pair: Any, size: int) -> list:
    if not isinstance(text_pair, (list, tuple)):
        raise TypeError(
            f"When text is a batch, text_pair must be a list of the same length ({size}), got {_describe(text_pair)}"
        )
    if len(text_pair) != size:
        raise ValueError(f"text has {size} items but text_pair has {len(text_pair)}; they must match")
    return list(text_pair)
