"""Tokenizers with transformers' API on the `tokenizers` (Rust) engine.

`AutoTokenizer.from_pretrained(path_or_id)` reads tokenizer.json, or converts vocab.txt (WordPiece),
vocab.json + merges.txt (byte-level BPE) or a SentencePiece .model, caching the conversion. Importing this
package does not import torch; only `return_tensors="pt"` does.
"""

from .auto import AutoTokenizer
from .base import PreTrainedTokenizerFast
from .batch_encoding import BatchEncoding

# transformers' class names, all served by the one class (the engine does the model-specific work).
BertTokenizer = BertTokenizerFast = PreTrainedTokenizerFast
DistilBertTokenizer = DistilBertTokenizerFast = PreTrainedTokenizerFast
RobertaTokenizer = RobertaTokenizerFast = PreTrainedTokenizerFast
GPT2Tokenizer = GPT2TokenizerFast = PreTrainedTokenizerFast
XLMRobertaTokenizer = XLMRobertaTokenizerFast = PreTrainedTokenizerFast
CamembertTokenizer = CamembertTokenizerFast = PreTrainedTokenizerFast
T5Tokenizer = T5TokenizerFast = PreTrainedTokenizerFast
LlamaTokenizer = LlamaTokenizerFast = PreTrainedTokenizerFast
AlbertTokenizer = AlbertTokenizerFast = PreTrainedTokenizerFast
DebertaV2Tokenizer = DebertaV2TokenizerFast = PreTrainedTokenizerFast
CLIPTokenizer = CLIPTokenizerFast = PreTrainedTokenizerFast
TokenizersBackend = PreTrainedTokenizerFast

__all__ = [
    "AutoTokenizer",
    "BatchEncoding",
    "PreTrainedTokenizerFast",
    "TokenizersBackend",
    "CLIPTokenizer",
    "CLIPTokenizerFast",
    "BertTokenizer",
    "BertTokenizerFast",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
    "RobertaTokenizer",
    "RobertaTokenizerFast",
    "GPT2Tokenizer",
    "GPT2TokenizerFast",
    "XLMRobertaTokenizer",
    "XLMRobertaTokenizerFast",
    "CamembertTokenizer",
    "CamembertTokenizerFast",
    "T5Tokenizer",
    "T5TokenizerFast",
    "LlamaTokenizer",
    "LlamaTokenizerFast",
    "AlbertTokenizer",
    "AlbertTokenizerFast",
    "DebertaV2Tokenizer",
    "DebertaV2TokenizerFast",
]
