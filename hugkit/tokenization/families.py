"""What each transformers tokenizer class means to hugkit: its source format, defaults and post-processing.

One literal table. `tokenizer_config.json`'s `tokenizer_class` (or `config.json`'s `model_type`) picks a row;
the row says which converter reads a checkpoint without `tokenizer.json`, which special tokens the class
defaults to, which inputs the model takes, and how `[CLS]`/`<s>`-style tokens are added around a sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

WITH_TOKEN_TYPES = ("input_ids", "token_type_ids", "attention_mask")
WITHOUT_TOKEN_TYPES = ("input_ids", "attention_mask")
DEBERTA_INPUTS = ("input_ids", "attention_mask", "token_type_ids")

BERT_SPECIALS = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}
ROBERTA_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
GPT2_SPECIALS = {"unk_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>"}
MBART_SPECIALS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}
CLIP_SPECIALS = {
    "unk_token": "<|endoftext|>",
    "bos_token": "<|startoftext|>",
    "eos_token": "<|endoftext|>",
    "pad_token": "<|endoftext|>",
}


@dataclass(frozen=True)
class TokenizerFamily:
    name: str
    # Converter used without tokenizer.json: "wordpiece", "byte_level_bpe", "sentencepiece" or None (json only);
    # "clip_bpe" is used with a tokenizer.json too (only its vocabulary and merges are read, as transformers does).
    source: str | None = None
    model_input_names: tuple[str, ...] = WITHOUT_TOKEN_TYPES
    padding_side: str = "right"
    special_tokens: dict = field(default_factory=dict)
    # How special tokens frame a sequence when hugkit builds the post-processor:
    # "bert" ([CLS] A [SEP] B [SEP], pair typed 1), "roberta" (RobertaProcessing), "fairseq" (<s> A </s></s> B </s>),
    # "t5" (A </s> B </s>), "clip" (<|startoftext|> A <|endoftext|>, RobertaProcessing without offset trimming),
    # "pegasus" (A </s>, pairs A B </s>), "flags" (add_bos_token / add_eos_token decide, as transformers' base class
    # does), "language" (the tokenizer class frames with its language codes, see seq2seq.py).
    template: str = "flags"
    # SentencePiece file names the class looks for first.
    spm_files: tuple[str, ...] = ()
    # transformers 5 reads only the vocabulary, merges, character map, added tokens and post-processor of this
    # class's tokenizer.json and builds the rest as the class does (converters/class_pipelines.py).
    rebuilds_tokenizer_json: bool = False


GENERIC = TokenizerFamily("PreTrainedTokenizerFast", source=None)

_FAMILIES = [
    TokenizerFamily("BertTokenizer", "wordpiece", WITH_TOKEN_TYPES, special_tokens=BERT_SPECIALS, template="bert"),
    TokenizerFamily("DistilBertTokenizer", "wordpiece", WITHOUT_TOKEN_TYPES, special_tokens=BERT_SPECIALS, template="bert"),
    TokenizerFamily("RobertaTokenizer", "byte_level_bpe", special_tokens=ROBERTA_SPECIALS, template="roberta"),
    TokenizerFamily("GPT2Tokenizer", "byte_level_bpe", special_tokens=GPT2_SPECIALS, template="flags"),
    TokenizerFamily("CLIPTokenizer", "clip_bpe", special_tokens=CLIP_SPECIALS, template="clip"),
    TokenizerFamily(
        "XLMRobertaTokenizer", "sentencepiece", special_tokens=ROBERTA_SPECIALS, template="fairseq",
        spm_files=("sentencepiece.bpe.model",),
    ),
    TokenizerFamily(
        "CamembertTokenizer", "sentencepiece", special_tokens=ROBERTA_SPECIALS, template="fairseq",
        spm_files=("sentencepiece.bpe.model",),
    ),
    TokenizerFamily(
        "T5Tokenizer", "sentencepiece",
        special_tokens={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
        template="t5", spm_files=("spiece.model",), rebuilds_tokenizer_json=True,
    ),
    TokenizerFamily(
        "PegasusTokenizer", "sentencepiece",
        special_tokens={"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>", "mask_token": "<mask_2>"},
        template="pegasus", spm_files=("spiece.model",), rebuilds_tokenizer_json=True,
    ),
    TokenizerFamily(
        "MBartTokenizer", "sentencepiece", special_tokens=MBART_SPECIALS, template="language",
        spm_files=("sentencepiece.bpe.model",), rebuilds_tokenizer_json=True,
    ),
    TokenizerFamily(
        "MBart50Tokenizer", "sentencepiece",
        special_tokens={name: value for name, value in MBART_SPECIALS.items() if name != "bos_token"},
        template="language", spm_files=("sentencepiece.bpe.model",), rebuilds_tokenizer_json=True,
    ),
    TokenizerFamily(
        "NllbTokenizer", "sentencepiece", special_tokens=MBART_SPECIALS,
        template="language", spm_files=("sentencepiece.bpe.model",), rebuilds_tokenizer_json=True,
    ),
    # source.spm + target.spm + vocab.json (ids from the json); see marian.py.
    TokenizerFamily(
        "MarianTokenizer", "marian", special_tokens={"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
        template="language",
    ),
    TokenizerFamily(
        "LlamaTokenizer", "sentencepiece", padding_side="left",
        special_tokens={"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>"},
        template="flags", spm_files=("tokenizer.model",), rebuilds_tokenizer_json=True,
    ),
    TokenizerFamily(
        "AlbertTokenizer", "sentencepiece",
        special_tokens={
            "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "<unk>", "sep_token": "[SEP]",
            "pad_token": "<pad>", "cls_token": "[CLS]", "mask_token": "[MASK]",
        },
        template="bert", spm_files=("spiece.model",),
    ),
    TokenizerFamily(
        "DebertaV2Tokenizer", "sentencepiece", DEBERTA_INPUTS,
        special_tokens={
            "bos_token": "[CLS]", "eos_token": "[SEP]", "unk_token": "[UNK]", "sep_token": "[SEP]",
            "pad_token": "[PAD]", "cls_token": "[CLS]", "mask_token": "[MASK]",
        },
        template="bert", spm_files=("spm.model",),
    ),
    # Read from tokenizer.json only; the row keeps transformers' inputs and padding side.
    TokenizerFamily("DebertaTokenizer", None, DEBERTA_INPUTS, special_tokens=ROBERTA_SPECIALS, template="roberta"),
    TokenizerFamily("MPNetTokenizer", None, special_tokens=ROBERTA_SPECIALS, template="roberta"),
    TokenizerFamily("GemmaTokenizer", None, padding_side="left"),
    TokenizerFamily("CodeLlamaTokenizer", None, padding_side="left"),
    TokenizerFamily("XLNetTokenizer", None, padding_side="left"),
    GENERIC,
]

FAMILIES: dict[str, TokenizerFamily] = {family.name: family for family in _FAMILIES}

# Other class names that transformers maps onto one of the rows above.
CLASS_ALIASES = {
    "TokenizersBackend": "PreTrainedTokenizerFast",
    "PreTrainedTokenizer": "PreTrainedTokenizerFast",
    "ElectraTokenizer": "BertTokenizer",
    "MobileBertTokenizer": "BertTokenizer",
    "SqueezeBertTokenizer": "BertTokenizer",
    "ConvBertTokenizer": "BertTokenizer",
    "LayoutLMTokenizer": "BertTokenizer",
    "BartTokenizer": "RobertaTokenizer",
    "LongformerTokenizer": "RobertaTokenizer",
    "MT5Tokenizer": "T5Tokenizer",
}

# config.json model types whose tokenizer transformers 5 registers as TokenizersBackend: a checkpoint of one of
# them that names a specialized class (Mistral's "LlamaTokenizer") is still read as its files say.
GENERIC_MODEL_TYPES = frozenset({"mistral", "mixtral", "mistral3", "ministral", "ministral3"})

# config.json model_type -> tokenizer class, as transformers' AutoTokenizer maps them.
MODEL_TYPE_TO_CLASS = {
    "albert": "AlbertTokenizer",
    "bart": "RobertaTokenizer",
    "bert": "BertTokenizer",
    "camembert": "CamembertTokenizer",
    "clip": "CLIPTokenizer",
    "clip_text_model": "CLIPTokenizer",
    "codegen": "GPT2Tokenizer",
    "deberta": "DebertaTokenizer",
    "deberta-v2": "DebertaV2Tokenizer",
    "distilbert": "DistilBertTokenizer",  # transformers 5 says BertTokenizer; DistilBERT takes no token_type_ids
    "electra": "BertTokenizer",
    "gemma": "GemmaTokenizer",
    "gpt2": "GPT2Tokenizer",
    "gpt_neo": "GPT2Tokenizer",
    "gptj": "GPT2Tokenizer",
    "llama": "LlamaTokenizer",
    "longformer": "RobertaTokenizer",
    "marian": "MarianTokenizer",
    "mbart": "MBartTokenizer",
    "nllb": "NllbTokenizer",
    "nllb-moe": "NllbTokenizer",
    "pegasus": "PegasusTokenizer",
    "mobilebert": "BertTokenizer",
    "mpnet": "MPNetTokenizer",
    "mt5": "T5Tokenizer",
    "nomic_bert": "BertTokenizer",
    "opt": "GPT2Tokenizer",
    "phi": "GPT2Tokenizer",
    "roberta": "RobertaTokenizer",
    "squeezebert": "BertTokenizer",
    "starcoder2": "GPT2Tokenizer",
    "t5": "T5Tokenizer",
    "xlm-roberta": "XLMRobertaTokenizer",
    "xlnet": "XLNetTokenizer",
}


def canonical_class_name(name: str | None) -> str | None:
    if not name:
        return None
    name = name[:-4] if name.endswith("Fast") else name
    return CLASS_ALIASES.get(name, name)


def family_for_class(name: str | None) -> TokenizerFamily | None:
    """The row for a transformers class name; None when hugkit has no row for it."""
    return FAMILIES.get(canonical_class_name(name) or "")
