"""Marian (opus-mt) SentencePiece models + vocab.json -> one engine per side, as transformers' MarianTokenizer encodes.

transformers' MarianTokenizer (a Python tokenizer) splits the text on added tokens, has SentencePiece encode each
chunk (`SentencePieceProcessor.encode`, so the model's own normalizer spec applies per chunk), and looks every piece
up by its spelling in vocab.json (target_vocab.json for targets with ``separate_vocabs``); a spelling the json does
not hold is `<unk>`. The engine here is a Unigram model of the SentencePiece model's pieces, numbered with the
json's ids. The json's other entries (the other side's pieces of a shared vocabulary, ...) must have ids too but
must never be picked by segmentation: they are stored under a spelling no text can produce. A span the model
cannot segment comes out as the engine's unknown token, spelled as the span; MarianTokenizer then looks that
spelling up in the json, as transformers does.

Language codes of multilingual models (``>>fr<<``-style entries of the json): transformers takes a code off the
start of the text (``>>...<<``, up to the first ``<<``) and looks it up in the json (`<unk>` when it is not there);
anywhere else the code is ordinary text. Here a code is stored in the engine, and registered as an added token,
under a spelling of the same length no text holds (`hidden_code`); MarianTokenizer rewrites a leading code to that
spelling before encoding (and a leading code the json lacks to the unknown token), so ids and offsets come out as
in transformers. Known differences, outside normal use: transformers also strips a code at the start of a chunk
after a special token (``"</s>>>fr<< x"``); pieces of the SentencePiece model that the json lacks are left out of
the segmentation (transformers gives `<unk>` for them).
"""

from __future__ import annotations

import re

from tokenizers import AddedToken, Tokenizer
from tokenizers.models import Unigram

from ..sentencepiece_model import NORMAL, USER_DEFINED, load_sentencepiece_model
from .sentencepiece import apply_processor_spec

LANGUAGE_CODE = re.compile(r">>.+<<")
# Entries the model must never produce are stored behind this prefix (normalized text holds no NUL).
HIDDEN = "\x00\x00\ue000"


def hidden_code(code: str) -> str:
    """The engine's spelling of a language code: as long as the code, so offsets stay right."""
    return "\x00\ue000" + code[2:]


def check_vocab(vocab: dict, name: str) -> None:
    if not isinstance(vocab, dict) or not all(isinstance(index, int) for index in vocab.values()):
        raise ValueError(f"{name} must map token strings to integer ids")
    if sorted(vocab.values()) != list(range(len(vocab))):
        raise ValueError(f"{name} must number its {len(vocab)} tokens 0..{len(vocab) - 1} without gaps or repeats")


def language_codes(vocab: dict[str, int]) -> list[str]:
    return [token for token in vocab if LANGUAGE_CODE.fullmatch(token)]


def marian_engine(spm_path, vocab: dict[str, int], unk_token: str, keep: list[str]) -> Tokenizer:
    """An engine that segments like `spm_path`'s SentencePiece model, with `vocab`'s ids; `keep` (the special
    tokens, which become added tokens) keep their spelling."""
    model = load_sentencepiece_model(spm_path)
    if model.is_bpe:
        raise NotImplementedError(f"{spm_path} is a BPE SentencePiece model; Marian tokenizers use Unigram models")
    if unk_token not in vocab:
        raise ValueError(f"The unknown token {unk_token!r} must be in vocab.json")
    scores = {piece.piece: piece.score for piece in model.pieces if piece.type in (NORMAL, USER_DEFINED)}
    kept = set(keep) | {unk_token}
    codes = set(language_codes(vocab))
    pieces = []
    for token, _ in sorted(vocab.items(), key=lambda item: item[1]):
        if token in scores:
            pieces.append((token, scores[token]))
        elif token in codes:
            pieces.append((hidden_code(token), 0.0))
        else:
            pieces.append((token if token in kept else HIDDEN + token, 0.0))
    tokenizer = Tokenizer(Unigram(pieces, unk_id=vocab[unk_token], byte_fallback=False))
    apply_processor_spec(tokenizer, model, legacy=True)
    if codes:
        tokenizer.add_tokens([AddedToken(hidden_code(code), normalized=False, special=False)
                              for code in language_codes(vocab)])
    return tokenizer
