"""A GGUF file's embedded tokenizer (``tokenizer.ggml.*`` metadata) -> `tokenizers.Tokenizer`, as transformers'
GGUF loading builds it.

Supported ``tokenizer.ggml.model`` types:

- ``"gpt2"``: byte-level BPE ("gpt2", "llama-bpe", "smollm", "qwen2", ... by ``tokenizer.ggml.pre``). Tokens not
  spelled in the byte alphabet are re-spelled from their UTF-8 bytes; merges come from the file. The split regex
  follows ``tokenizer.ggml.pre`` (the pre-tokenizer the merges were learned with); a name without a row keeps
  GPT-2's byte-level split, as transformers does.
- ``"llama"``: SentencePiece BPE with byte fallback (Llama 1/2, Mistral, TinyLlama, ...), rebuilt as transformers'
  ``LlamaTokenizer``: pieces as the file spells them (``▁`` for spaces), merges from the file or, when it has none
  (llama.cpp writes none for SentencePiece), derived from the vocabulary ranked by the pieces' scores; a ``▁`` is
  prepended to the first word; ``<0x0A>``-style byte pieces decode through byte fallback. Gemma and Phi-3 files,
  which transformers rebuilds differently, are refused with a clear error.

Both: tokens typed CONTROL (3) become special added tokens, USER_DEFINED (4) plain added tokens.
BOS: ``tokenizer.ggml.add_bos_token`` decides; absent, byte-level BPE adds none and SentencePiece adds one (llama.cpp's
and transformers' rule). The SmolLM2 GGUF says False, as the original HF tokenizer does, so prompts get no BOS.
"""

from __future__ import annotations

from tokenizers import AddedToken, Regex, Tokenizer, decoders, pre_tokenizers
from tokenizers.models import BPE

from . import Conversion
from ..byte_level import bytes_to_unicode

_LLAMA3 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_QWEN2 = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# tokenizer.ggml.pre -> split regex (names without a row keep GPT-2's ByteLevel split).
SPLIT_REGEX = {
    "llama3": _LLAMA3, "llama-v3": _LLAMA3, "llama-bpe": _LLAMA3, "smaug-bpe": _LLAMA3, "dbrx": _LLAMA3,
    "falcon3": _LLAMA3, "qwen2": _QWEN2, "deepseek-r1-qwen": _QWEN2,
}
SUPPORTED_MODELS = ("gpt2", "llama")
# Architectures whose SentencePiece files transformers rebuilds with their own quirks (space handling, merge order).
_SENTENCEPIECE_ARCHITECTURES_NOT_SUPPORTED = ("gemma", "gemma2", "gemma3", "gemma4", "phi3")
_CONTROL, _USER_DEFINED = 3, 4
SPIECE_UNDERLINE = "\u2581"


def gguf_tokenizer_fields(reader) -> dict:
    """The tokenizer metadata of an open GGUFReader, under short names."""
    from ...gguf.reader import metadata

    keys = ("model", "pre", "tokens", "scores", "token_type", "merges", "bos_token_id", "eos_token_id", "unknown_token_id",
            "padding_token_id", "add_bos_token", "add_eos_token", "add_space_prefix")
    fields = {key: metadata(reader, f"tokenizer.ggml.{key}") for key in keys}
    fields["chat_template"] = metadata(reader, "tokenizer.chat_template")
    fields["architecture"] = metadata(reader, "general.architecture")
    return fields


def convert_gguf(fields: dict, source: str = "GGUF file") -> Conversion:
    model = fields.get("model")
    if model not in SUPPORTED_MODELS:
        raise ValueError(
            f"The {source} has a {model!r} tokenizer (tokenizer.ggml.model), which hugkit cannot convert yet. "
            f"Supported: 'gpt2' (byte-level BPE) and 'llama' (SentencePiece BPE)."
        )
    if model == "llama":
        architecture = fields.get("architecture")
        if architecture in _SENTENCEPIECE_ARCHITECTURES_NOT_SUPPORTED:
            raise ValueError(
                f"The {source} is a {architecture!r} model with a SentencePiece tokenizer, which hugkit cannot rebuild "
                f"from GGUF metadata yet (only Llama-style SentencePiece files). Load the model's original tokenizer "
                f"files instead: AutoTokenizer.from_pretrained(<folder with tokenizer.json or tokenizer.model>)."
            )
        tokenizer = _sentencepiece_bpe(fields)
    else:
        tokenizer = _byte_level_bpe(fields)
    return Conversion(tokenizer, _derived_settings(fields))


def merges_ranked_by_score(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces of the vocabulary, best-scored merged piece first (ties: shorter left
    part, then shorter right part, then vocabulary order) -- the order transformers derives SentencePiece merges in."""
    ranked = []
    for merged, score in scores.items():
        splits = [(merged[:cut], merged[cut:]) for cut in range(1, len(merged))]
        splits = sorted(((left, right) for left, right in splits if left in vocab and right in vocab),
                        key=lambda pair: (vocab[pair[0]], vocab[pair[1]]))
        ranked.extend((score, left, right) for left, right in splits)
    ranked.sort(key=lambda item: (item[0], len(item[1]), len(item[2])), reverse=True)
    return [(left, right) for _, left, right in ranked]


def _sentencepiece_bpe(fields: dict) -> Tokenizer:
    tokens = list(fields["tokens"])
    vocab = {token: index for index, token in enumerate(tokens)}  # a repeated piece keeps its last id, as transformers
    if fields.get("merges"):
        merges = [tuple(merge.split(" ", 1)) for merge in fields["merges"]]
    else:
        scores = fields.get("scores")
        if scores is None or len(scores) != len(tokens):
            raise ValueError("A SentencePiece GGUF tokenizer needs tokenizer.ggml.scores (one per token) to rank its "
                             "merges; this file has none. Load the model's original tokenizer files instead.")
        merges = merges_ranked_by_score(vocab, dict(zip(tokens, (float(score) for score in scores))))
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=True, byte_fallback=True, dropout=None))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="first", split=False)
    tokenizer.decoder = decoders.Sequence([
        decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse(),
        decoders.Strip(content=" ", left=1),
    ])
    _add_typed_tokens(tokenizer, tokens, fields, spelled_in=None)
    return tokenizer


def _byte_level_bpe(fields: dict) -> Tokenizer:
    spell = bytes_to_unicode()
    alphabet = set(spell.values())
    tokens = list(fields["tokens"])
    vocab = {}
    for index, token in enumerate(tokens):
        if not set(token) <= alphabet:
            token = "".join(spell[byte] for byte in token.encode("utf-8"))
        vocab.setdefault(token, index)
    merges = [tuple(merge.split(" ", 1)) for merge in fields.get("merges") or []]
    tokenizer = Tokenizer(BPE(vocab, merges, fuse_unk=False, continuing_subword_prefix="", end_of_word_suffix=""))
    split = SPLIT_REGEX.get(fields.get("pre"))
    add_prefix_space = bool(fields.get("add_space_prefix") or False)
    if split is None:
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=add_prefix_space)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(split), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ])
    tokenizer.decoder = decoders.ByteLevel()
    # A control token spelled outside the byte alphabet is a llama.cpp mislabel: adding it would grow the vocabulary.
    _add_typed_tokens(tokenizer, tokens, fields, spelled_in=alphabet)
    return tokenizer


def _add_typed_tokens(tokenizer: Tokenizer, tokens: list[str], fields: dict, spelled_in: set | None) -> None:
    """CONTROL tokens become special added tokens and USER_DEFINED ones plain added tokens, so text never splits them."""
    types = list(fields.get("token_type") or [])
    control = [tok for tok, kind in zip(tokens, types)
               if kind == _CONTROL and (spelled_in is None or set(tok) <= spelled_in)]
    if control:
        tokenizer.add_special_tokens([AddedToken(tok, normalized=False, special=True) for tok in control])
    known = tokenizer.get_vocab()
    user = [tok for tok, kind in zip(tokens, types) if kind == _USER_DEFINED and tok in known]
    if user:
        tokenizer.add_tokens([AddedToken(tok, normalized=False, special=False) for tok in user])


def _derived_settings(fields: dict) -> dict:
    tokens = list(fields["tokens"])

    def token(key: str):
        index = fields.get(key)
        return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

    add_bos = fields.get("add_bos_token")
    return {
        "special_tokens": {"bos_token": token("bos_token_id"), "eos_token": token("eos_token_id"),
                           "unk_token": token("unknown_token_id"), "pad_token": token("padding_token_id")},
        "add_bos_token": bool(add_bos) if add_bos is not None else fields.get("model") == "llama",
        "add_eos_token": bool(fields.get("add_eos_token") or False),
        "chat_template": fields.get("chat_template"),
    }
