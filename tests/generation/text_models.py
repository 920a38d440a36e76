"""Tiny random checkpoints with real tokenizers, shared by the streaming, stop-string, chat and pipeline tests.

Each is built once per test session by transformers (the reference) into a temporary folder; hugkit and transformers
then load the same folder.
"""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

from tests.assets import ASSETS, GPT2_FILES, require

LLAMA3 = ASSETS / "llama3" / "package" / "models"
CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXTS = [
    "Hello world, this is a test.",
    "Naïve café, déjà vu — crème brûlée!",
    "東京は日本の首都です。我喜欢学习中文。",
    "Emoji 🙂🚀 and a family 👩‍👩‍👧 here",
    "  leading spaces\tand tabs\n\nnew lines  ",
]


@lru_cache(maxsize=None)
def _root() -> Path:
    root = Path(tempfile.mkdtemp(prefix="hugkit-textgen-"))
    atexit.register(shutil.rmtree, root, True)
    return root


def _llama(folder: Path, vocab_size: int, **overrides) -> Path:
    import torch
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab_size, hidden_size=16, intermediate_size=24, num_hidden_layers=2, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=256, initializer_range=0.2, tie_word_embeddings=True,
        **overrides,
    )
    transformers.LlamaForCausalLM(config).eval().save_pretrained(folder)
    return folder


@lru_cache(maxsize=None)
def llama_with_gpt2_tokenizer() -> Path:
    """Byte-level BPE (the real GPT-2 files), a ChatML template, pad = eos = <|endoftext|>."""
    require(GPT2_FILES)
    folder = _llama(_root() / "llama-gpt2", 50257, bos_token_id=50256, eos_token_id=50256)
    shutil.copy(GPT2_FILES / "encoder.json", folder / "vocab.json")
    shutil.copy(GPT2_FILES / "vocab.bpe", folder / "merges.txt")
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "GPT2Tokenizer", "chat_template": CHATML, "pad_token": "<|endoftext|>"}
    ))
    return folder


@lru_cache(maxsize=None)
def llama_with_llama3_tokenizer() -> Path:
    """The real Llama-3 tokenizer.json and chat template; eos = <|eot_id|>."""
    require(LLAMA3)
    folder = _llama(_root() / "llama-llama3", 128256, bos_token_id=128000, eos_token_id=128009)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(LLAMA3 / name, folder / name)
    return folder


@lru_cache(maxsize=None)
def byte_fallback_tokenizer_folder() -> Path:
    """A Llama-style SentencePiece BPE with byte fallback (<0xNN> pieces), trained here on a tiny corpus."""
    import sentencepiece

    folder = _root() / "spm-byte-fallback"
    folder.mkdir()
    corpus = folder / "corpus.txt"
    # Latin text only: CJK and emoji are left to the byte-fallback pieces.
    lines = [TEXTS[0], TEXTS[1]] * 3 + [
        "the quick brown fox jumps over the lazy dog " * 3, "über straße année niño", "kasiri torimu nesalo vide",
    ]
    corpus.write_text("\n".join(lines), encoding="utf-8")
    sentencepiece.SentencePieceTrainer.train(
        input=str(corpus), model_prefix=str(folder / "tokenizer"), model_type="bpe", vocab_size=320,
        byte_fallback=True, minloglevel=2, num_threads=1,
    )
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "add_bos_token": True, "add_eos_token": False, "chat_template": CHATML}
    ))
    return folder


@lru_cache(maxsize=None)
def llama_with_byte_fallback_tokenizer() -> Path:
    tokenizer_folder = byte_fallback_tokenizer_folder()
    folder = _llama(_root() / "llama-spm", 320, bos_token_id=1, eos_token_id=2)
    for path in tokenizer_folder.iterdir():
        if path.name != "corpus.txt":
            shutil.copy(path, folder / path.name)
    return folder


def load_both(folder: Path):
    """(hugkit model, hugkit tokenizer, transformers model, transformers tokenizer) from one folder."""
    import transformers

    import hugkit

    return (
        hugkit.AutoModelForCausalLM.from_pretrained(folder), hugkit.AutoTokenizer.from_pretrained(folder),
        transformers.AutoModelForCausalLM.from_pretrained(folder).eval(), transformers.AutoTokenizer.from_pretrained(folder),
    )
