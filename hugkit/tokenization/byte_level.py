"""GPT-2's byte-level alphabet: the reversible map from the 256 byte values to printable characters.

Byte-level BPE vocabularies (GPT-2, RoBERTa, Llama-3, tiktoken ranks rewritten for the `tokenizers` engine) spell every
token in this alphabet, so converters and stop-string matching both need it.
"""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """byte value -> the printable character that stands for it (printable bytes stand for themselves)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars)}
