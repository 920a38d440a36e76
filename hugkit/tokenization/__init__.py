"""Tokenizers with transformers' API on the `tokenizers` (Rust) engine.

`AutoTokenizer.from_pretrained(path_or_id)` reads tokenizer.json, or converts vocab.txt (WordPiece),
vocab.json + merges.txt (byte-level BPE) or a SentencePiece .model, caching the conversion. Importing this
package does not import torch; only `return_tensors="pt"` does.
"""

from .auto import AutoTokenizer
from .base import PreTrainedTokenizerFast
from .batch_encoding import BatchEncoding
from .marian import MarianTokenizer
from .seq2seq import MBart50Tokenizer, MBartTokenizer, NllbTokenizer, T5Tokenizer

# transformers' class names, all served by the one class (the engine does the model-specific work).
BertTokenizer = BertTokenizerFast = PreTrainedTokenizerFast
DistilBertTokenizer = DistilBertTokenizerFast = PreTrainedTokenizerFast
RobertaTokenizer = RobertaTokenizerFast = PreTrainedTokenizerFast
GPT2Tokenizer = GPT2TokenizerFast = PreTrainedTokenizerFast
XLMRobertaTokenizer = XLMRobertaTokenizerFast = PreTrainedTokenizerFast
CamembertTokenizer = CamembertTokenizerFast = PreTrainedTokenizerFast
T5TokenizerFast = T5Tokenizer
PegasusTokenizer = PegasusTokenizerFast = PreTrainedTokenizerFast
MBartTokenizerFast = MBartTokenizer
MBart50TokenizerFast = MBart50Tokenizer
NllbTokenizerFast = NllbTokenizer
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
    "PegasusTokenizer",
    "PegasusTokenizerFast",
    "MBartTokenizer",
    "MBartTokenizerFast",
    "MBart50Tokenizer",
    "MBart50TokenizerFast",
    "NllbTokenizer",
    "NllbTokenizerFast",
    "MarianTokenizer",
    "LlamaTokenizer",
    "LlamaTokenizerFast",
    "AlbertTokenizer",
    "AlbertTokenizerFast",
    "DebertaV2Tokenizer",
    "DebertaV2TokenizerFast",
]
