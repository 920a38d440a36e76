"""The pipelines transformers 5's SentencePiece-style tokenizer classes build in their constructors.

transformers 5 gives T5, Pegasus, mBART, mBART-50, NLLB and Llama tokenizers a fixed pipeline (model type,
normalizer, pre-tokenizer, decoder) built from three inputs: the vocabulary (pieces with scores, or a piece -> id
table for BPE), the BPE merges, and the SentencePiece precompiled character map. The inputs come either from a
SentencePiece `.model` (reordered by each class's `convert_from_spm`, see sentencepiece.py) or from a
`tokenizer.json`: for these classes transformers reads only the vocabulary, merges, character map, added tokens
and post-processor from the file and builds everything else itself. So a `tokenizer.json` written by an older
converter (Llama's ``Prepend``/``Replace`` normalizers, T5's ``Strip``/``Replace`` normalizers, ...) encodes as
its class says, not as the file's own pipeline would: hugkit follows transformers here.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram

SPIECE_UNDERLINE = "▁"


@dataclass
class ClassInputs:
    """What a class constructor builds its engine from."""

    vocab: list[tuple[str, float]] | dict[str, int]  # Unigram: (piece, score) by id; BPE: piece -> id
    merges: list[tuple[str, str]] = field(default_factory=list)
    charsmap: bytes | None = None


# ---------------------------------------------------------------- shared pieces


def _whitespace_split_metaspace() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True),
        ]
    )


def _metaspace() -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)


def _metaspace_decoder() -> decoders.Decoder:
    return decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme="always", split=True)


def _unigram(inputs: ClassInputs, unk_id: int) -> Tokenizer:
    vocab = inputs.vocab
    if not isinstance(vocab, list):
        raise ValueError("This tokenizer class needs a Unigram vocabulary of (piece, score) pairs, "
                         f"got a {type(vocab).__name__}")
    if not 0 <= unk_id < len(vocab):
        raise ValueError(f"The unknown-token id {unk_id} is outside the vocabulary of {len(vocab)} pieces")
    return Tokenizer(Unigram([(str(piece), float(score)) for piece, score in vocab], unk_id=unk_id,
                             byte_fallback=False))


def _bpe_vocab(inputs: ClassInputs) -> dict[str, int]:
    vocab = inputs.vocab
    if isinstance(vocab, list):  # a Unigram-style list: ids are positions
        return {str(piece): index for index, (piece, _) in enumerate(vocab)}
    return dict(vocab)


# ---------------------------------------------------------------- one constructor per class


def t5_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    # transformers' T5Tokenizer fixes the unknown piece at id 2 (<pad> </s> <unk>).
    tokenizer = _unigram(inputs, unk_id=2)
    if inputs.charsmap:
        tokenizer.normalizer = normalizers.Precompiled(inputs.charsmap)
    tokenizer.pre_tokenizer = _whitespace_split_metaspace()
    tokenizer.decoder = _metaspace_decoder()
    return tokenizer


def pegasus_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    unk = (str(options.get("unk_token") or "<unk>"), 0.0)
    vocab = [(str(piece), float(score)) for piece, score in inputs.vocab]
    try:
        unk_id = vocab.index(unk, 1)
    except ValueError:
        raise ValueError(f"Pegasus needs its unknown token {unk[0]!r} (score 0) in the vocabulary") from None
    tokenizer = _unigram(inputs, unk_id)
    if inputs.charsmap:
        steps = [normalizers.Precompiled(inputs.charsmap), normalizers.Replace(Regex(r" {2,}"), " ")]
    else:
        steps = [normalizers.Replace(Regex(r"\n"), " "), normalizers.Replace(Regex(r" {2,}"), " ")]
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = _metaspace()
    tokenizer.decoder = _metaspace_decoder()
    return tokenizer


def mbart_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    # mBART (cc25) keeps no normalizer at all in transformers 5, even when the model has a character map.
    tokenizer = _unigram(inputs, unk_id=3)
    tokenizer.pre_tokenizer = _whitespace_split_metaspace()
    tokenizer.decoder = _metaspace_decoder()
    return tokenizer


def mbart50_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    tokenizer = _unigram(inputs, unk_id=3)
    steps = [normalizers.Replace(Regex(r" {2,}"), " ")]
    if inputs.charsmap:
        steps.insert(0, normalizers.Precompiled(inputs.charsmap))
    tokenizer.normalizer = normalizers.Sequence(steps)
    tokenizer.pre_tokenizer = _metaspace()
    tokenizer.decoder = _metaspace_decoder()
    return tokenizer


def nllb_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    tokenizer = Tokenizer(BPE(vocab=_bpe_vocab(inputs), merges=list(inputs.merges), dropout=None,
                              unk_token=str(options.get("unk_token") or "<unk>"), fuse_unk=True,
                              byte_fallback=False))
    if inputs.charsmap:
        tokenizer.normalizer = normalizers.Sequence(
            [normalizers.Precompiled(inputs.charsmap), normalizers.Replace(Regex(r" {2,}"), " ")]
        )
    tokenizer.pre_tokenizer = _metaspace()
    tokenizer.decoder = _metaspace_decoder()
    return tokenizer


def llama_pipeline(inputs: ClassInputs, options: dict) -> Tokenizer:
    """transformers 5's LlamaTokenizer: byte-fallback BPE, no normalizer, one Metaspace pre-tokenizer.

    The prefix "▁" is added by the pre-tokenizer: ``legacy=True`` gives every chunk between added tokens one
    (``prepend_scheme="always"``), ``legacy=False`` only the start of the text (``"first"``), and
    ``add_prefix_space=False`` none. Metaspace never adds a "▁" to text that already starts with one, so text
    starting with spaces keeps exactly those spaces (the older ``Prepend("▁")`` normalizer would add another).
    """
    tokenizer = Tokenizer(BPE(vocab=_bpe_vocab(inputs), merges=list(inputs.merges), fuse_unk=True,
                              byte_fallback=True, dropout=None))
    add_prefix_space = options.get("add_prefix_space", True)
    if not add_prefix_space:
        prepend_scheme = "never"
    else:
        prepend_scheme = "always" if options.get("legacy", False) else "first"
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme, split=False
    )
    steps = [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_prefix_space:
        steps.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer


PIPELINES = {
    "T5Tokenizer": t5_pipeline,
    "PegasusTokenizer": pegasus_pipeline,
    "MBartTokenizer": mbart_pipeline,
    "MBart50Tokenizer": mbart50_pipeline,
    "NllbTokenizer": nllb_pipeline,
    "LlamaTokenizer": llama_pipeline,
}


def llama_options(settings: dict) -> dict:
    add_prefix_space = settings.get("add_prefix_space")
    return {"add_prefix_space": True if add_prefix_space is None else bool(add_prefix_space),
            "legacy": bool(settings.get("legacy", False))}


def pipeline_options(class_name: str, settings: dict) -> dict:
    """The settings a class constructor reads (so they also key the conversion cache)."""
    if class_name == "LlamaTokenizer":
        return llama_options(settings)
    if class_name in ("PegasusTokenizer", "NllbTokenizer"):
        return {"unk_token": str(settings.get("unk_token") or "<unk>")}
    return {}


def token_flags(class_name: str) -> dict:
    """How a class constructor re-flags a special token given as a plain string (mBART's <mask> swallows the space
    before it)."""
    if class_name in ("MBartTokenizer", "MBart50Tokenizer"):
        return {"mask_token": {"lstrip": True, "rstrip": False}}
    if class_name == "NllbTokenizer":
        return {"mask_token": {"normalized": True, "lstrip": True, "special": True}}
    return {}


def constructor_extra_tokens(class_name: str, settings: dict) -> list[dict] | None:
    """The extra special tokens a class constructor adds when its config names none and no SentencePiece model
    supplies its control pieces (the tokenizer.json path)."""
    from ..language_codes import MBART_LANGUAGE_CODES, NLLB_LANGUAGE_CODES

    if class_name == "T5Tokenizer":
        tokens = [f"<extra_id_{index}>" for index in range(int(settings.get("extra_ids", 100)))]
    elif class_name == "PegasusTokenizer":
        sentence_mask = settings.get("mask_token_sent", "<mask_1>")
        if isinstance(sentence_mask, dict):
            sentence_mask = sentence_mask.get("content")
        tokens = [] if sentence_mask is None else [str(sentence_mask)]
        tokens += [f"<unk_{index}>" for index in range(2, int(settings.get("offset", 103)))]
    elif class_name == "MBartTokenizer":
        tokens = list(MBART_LANGUAGE_CODES)
    elif class_name == "NllbTokenizer":
        tokens = list(NLLB_LANGUAGE_CODES)
    else:
        return None
    return [{"content": token, "special": True, "normalized": False} for token in tokens]


# ---------------------------------------------------------------- inputs read from a tokenizer.json


def inputs_from_tokenizer_json(data: dict, class_name: str) -> ClassInputs:
    """The vocabulary, merges and character map transformers 5 takes from a tokenizer.json for `class_name`."""
    model = data.get("model") or {}
    model_type = model.get("type")
    vocab = model.get("vocab")
    if vocab is None:
        raise ValueError(f"The tokenizer.json has no model vocabulary, which a {class_name} needs")
    wants_bpe = class_name in ("LlamaTokenizer", "NllbTokenizer")
    if wants_bpe:
        if isinstance(vocab, list):
            vocab = {str(item[0] if isinstance(item, (list, tuple)) else item): index
                     for index, item in enumerate(vocab)}
        merges = [tuple(merge.split(" ")) if isinstance(merge, str) else tuple(merge)
                  for merge in model.get("merges") or []]
        if model_type not in (None, "BPE"):
            raise ValueError(f"A {class_name} reads a BPE tokenizer.json, but this one holds a {model_type} model")
        inputs = ClassInputs(vocab=vocab, merges=merges)
    else:
        if not (isinstance(vocab, list) and (not vocab or isinstance(vocab[0], (list, tuple)))):
            raise ValueError(f"A {class_name} reads a Unigram tokenizer.json (pieces with scores), but this one holds "
                             f"a {model_type or 'different'} model")
        inputs = ClassInputs(vocab=[(str(piece), float(score)) for piece, score in vocab])
    inputs.charsmap = _precompiled_charsmap(data.get("normalizer"))
    return inputs


def _precompiled_charsmap(normalizer: dict | None) -> bytes | None:
    """The first Precompiled step's character map (transformers looks one level deep, as here)."""
    if not normalizer:
        return None
    steps = normalizer.get("normalizers") if normalizer.get("type") == "Sequence" else [normalizer]
    for step in steps or []:
        if isinstance(step, dict) and step.get("type") == "Precompiled" and step.get("precompiled_charsmap"):
            return base64.b64decode(step["precompiled_charsmap"])
    return None


def file_added_tokens(data: dict) -> list[tuple[int, AddedToken]]:
    """The tokenizer.json's own added tokens, by id (transformers reads them when the config lists none)."""
    tokens = []
    for entry in data.get("added_tokens") or []:
        fields = {key: entry[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
                  if key in entry}
        tokens.append((int(entry["id"]), AddedToken(**fields)))
    return sorted(tokens, key=lambda item: item[0])
