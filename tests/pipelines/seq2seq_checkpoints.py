"""Tiny random encoder-decoder checkpoints with real tokenizers, for the summarization/translation pipeline tests.

The tokenizer is a byte-level BPE trained on a small English corpus (BART's layout: <s>=0, <pad>=1, </s>=2,
<unk>=3, <mask> last) and saved by transformers, so hugkit and transformers v4 both read the same files; the
model's vocabulary is the tokenizer's. Weights are random (seeded): outputs are nonsense but deterministic, which
is all a parity test needs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CORPUS = [
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Scientists announced on Monday that the new telescope had found water on a distant planet.",
    "The city council voted to build a new bridge across the river, to be finished in two years.",
    "How old are you? I am thirty years old and I live in Paris with my family.",
    "Markets rallied after the central bank said it would keep interest rates unchanged this year.",
    "The team won the championship after a dramatic final match that went to extra time.",
] * 20

ARTICLE = (
    "The city council voted on Monday to build a new bridge across the river. The bridge will cost forty million "
    "dollars and should be finished in two years, the mayor said, adding that traffic in the old town would improve."
)


def train_tokenizer(folder: Path, model_max_length: int = 160) -> int:
    """Save a BART-style byte-level BPE tokenizer into ``folder``; return its vocabulary size."""
    import transformers
    from tokenizers import ByteLevelBPETokenizer, processors

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS, vocab_size=320, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>"])
    bpe.add_special_tokens(["<mask>"])
    bpe.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
        mask_token="<mask>", model_max_length=model_max_length,
    )
    tokenizer.save_pretrained(folder)
    readable_by_v4(folder)
    return len(tokenizer)


def readable_by_v4(folder: Path) -> None:
    """Rewrite what transformers 5 writes into tokenizer_config.json in the spelling v4 (the pipeline reference)
    reads too: its generic class name, and the special-token list under v4's key. hugkit reads both spellings."""
    config_path = folder / "tokenizer_config.json"
    config = read_json(config_path)
    if config.get("tokenizer_class") == "TokenizersBackend":
        config["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(config.get("extra_special_tokens"), list):
        config["additional_special_tokens"] = config.pop("extra_special_tokens")
    config_path.write_text(json.dumps(config, indent=2))


def tiny_bart(folder: Path, *, seed: int = 0, generation: dict | None = None, task_params: dict | None = None) -> Path:
    """A BART summarizer in the layout of distilbart-cnn: beams, lengths and n-gram blocking in generation_config."""
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    vocab = train_tokenizer(folder)
    config = transformers.BartConfig(
        vocab_size=vocab, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
        decoder_attention_heads=4, encoder_ffn_dim=37, decoder_ffn_dim=37, max_position_embeddings=160,
        bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2, forced_eos_token_id=2,
        task_specific_params=task_params,
    )
    torch.manual_seed(seed)
    model = transformers.BartForConditionalGeneration(config).eval()
    with torch.no_grad():  # a strong, varied signal so different settings give different texts
        for param in model.parameters():
            param.normal_(0.0, 0.3)
    model.generation_config = transformers.GenerationConfig(
        **{"bos_token_id": 0, "pad_token_id": 1, "eos_token_id": 2, "decoder_start_token_id": 2,
           "forced_bos_token_id": 0, "forced_eos_token_id": 2, **(generation or {})}
    )
    model.save_pretrained(folder)
    return folder


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())
