"""Build a `tokenizers.Tokenizer` from pre-`tokenizer.json` vocabulary files, one module per source format.

A converter returns the model, normalizer, pre-tokenizer and decoder (never the post-processor: that needs
the final special-token ids, which depend on tokens added later from the config), plus the settings it derived
from the source (special pieces of a SentencePiece model, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tokenizers import Tokenizer


@dataclass
class Conversion:
    tokenizer: Tokenizer
    # Settings the source itself implies, e.g. {"special_tokens": {...}, "extra_special_tokens": [...]}.
    derived: dict = field(default_factory=dict)
