"""A GGUF file's embedded tokenizer (``tokenizer.ggml.*`` metadata) -> `tokenizers.Tokenizer`, as transformers'
GGUF loading builds it.

Supported: ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE; "gpt2", "llama-bpe", "smollm", "qwen2", ... by
``tokenizer.ggml.pre``). Tokens not spelled in the byte alphabet are re-spelled from their UTF-8 bytes; merges come
from the file; tokens typed CONTROL (3) become special added tokens, USER_DEFINED (4) plain added tokens.
The split regex follows ``tokenizer.ggml.pre`` (the pre-tokenizer the merges were learned with); a name without
a row keeps GPT-2's byte-level split, as transformers does.

BOS: ``tokenizer.ggml.add_bos_token`` decides (absent: no BOS for byte-level BPE), matching transformers. The
SmolLM2 GGUF says False, as the original HF tokenizer does, so prompts are encoded without BOS.
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
SUPPORTED_MODELS = ("gpt2",)
_CONTROL, _USER_DEFINED = 3, 4


def gguf_tokenizer_fields(reader) -> dict:
    """The tokenizer metadata of an open GGUFReader, under short names."""
    from ...gguf.reader import metadata

    keys = ("model", "pre", "tokens", "token_type", "merges", "bos_token_id", "eos_token_id", "unknown_token_id",
            "padding_token_id", "add_bos_token", "add_eos_token", "add_space_prefix")
    fields = {key: metadata(reader, f"tokenizer.ggml.{key}") for key in keys}
    fields["chat_template"] = metadata(reader, "tokenizer.chat_template")
    return fields


def convert_gguf(fields: dict, source: str = "GGUF file") -> Conversion:
    model = fields.get("model")
    if model not in SUPPORTED_MODELS:
        raise ValueError(
            f"The {source} has a {model!r} tokenizer (tokenizer.ggml.model), which hugkit cannot convert yet. "
            f"Supported: {', '.join(SUPPORTED_MODELS)} (byte-level BPE)."
        )
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
    types = list(fields.get("token_type") or [])
    control = [tok for tok, kind in zip(tokens, types) if kind == _CONTROL and set(tok) <= alphabet]
    if control:
        tokenizer.add_special_tokens([AddedToken(tok, normalized=False, special=True) for tok in control])
    known = tokenizer.get_vocab()
    user = [tok for tok, kind in zip(tokens, types) if kind == _USER_DEFINED and tok in known]
    if user:
        tokenizer.add_tokens([AddedToken(tok, normalized=False, special=False) for tok in user])

    def token(key: str):
        index = fields.get(key)
        return tokens[int(index)] if index is not None and 0 <= int(index) < len(tokens) else None

    derived = {
        "special_tokens": {"bos_token": token("bos_token_id"), "eos_token": token("eos_token_id"),
                           "unk_token": token("unknown_token_id"), "pad_token": token("padding_token_id")},
        "add_bos_token": bool(fields.get("add_bos_token") or False),
        "add_eos_token": bool(fields.get("add_eos_token") or False),
        "chat_template": fields.get("chat_template"),
    }
    return Conversion(tokenizer, derived)
