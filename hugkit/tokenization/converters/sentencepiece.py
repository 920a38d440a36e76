"""SentencePiece `.model` -> tokenizers pipeline, following each transformers tokenizer class.

transformers 5 gives every SentencePiece class its own pipeline (XLM-R's fairseq id offset, T5's sentinel ids,
Llama's byte-fallback BPE with a Metaspace pre-tokenizer, ALBERT's accent stripping, DeBERTa-v2's whitespace
normalizer, ...). A model without a known class follows the model's own normalizer spec, so it encodes like
`SentencePieceProcessor.encode`.
"""

from __future__ import annotations

import re
from pathlib import Path

from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers
from tokenizers.models import BPE, Unigram

from ..language_codes import MBART50_LANGUAGE_CODES, MBART_LANGUAGE_CODES
from ..sentencepiece_model import CONTROL, NORMAL, USER_DEFINED, SentencePieceModel, load_sentencepiece_model
from . import Conversion
from .class_pipelines import PIPELINES, ClassInputs, pipeline_options, token_flags

# (setting, default) pairs read by transformers' `convert_from_spm` of each class. Pegasus reads its mask tokens
# with the defaults swapped relative to its constructor's (<mask_1> / <mask_2>); that is what transformers 5 does.
_FIXED_TOKENS = {
    "PegasusTokenizer": (("pad_token", "<pad>"), ("eos_token", "</s>"), ("mask_token", "<mask_1>"),
                         ("mask_token_sent", "<mask_2>")),
    "MBartTokenizer": (("bos_token", "<s>"), ("pad_token", "<pad>"), ("eos_token", "</s>"), ("unk_token", "<unk>"),
                       ("mask_token", "<mask>")),
    "MBart50Tokenizer": (("cls_token", "<s>"), ("pad_token", "<pad>"), ("eos_token", "</s>"), ("unk_token", "<unk>"),
                         ("mask_token", "<mask>")),
    "NllbTokenizer": (("bos_token", "<s>"), ("pad_token", "<pad>"), ("eos_token", "</s>"), ("unk_token", "<unk>")),
}


def _token_text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict):
        return str(value.get("content"))
    return str(value)


SPIECE_UNDERLINE = "▁"


def sentencepiece_options(class_name: str, settings: dict) -> dict:
    """The settings that shape the converted pipeline for `class_name` (and so key the cache)."""
    options: dict = {"class": class_name}
    if class_name in ("XLMRobertaTokenizer", "CamembertTokenizer", "AlbertTokenizer", "DebertaV2Tokenizer"):
        options["add_prefix_space"] = bool(settings.get("add_prefix_space", True))
    if class_name in PIPELINES:
        options.update(pipeline_options(class_name, settings))
    if class_name in ("XLMRobertaTokenizer", "CamembertTokenizer"):
        for name, default in (("bos_token", "<s>"), ("pad_token", "<pad>"), ("eos_token", "</s>"),
                              ("unk_token", "<unk>"), ("mask_token", "<mask>")):
            options[name] = str(settings.get(name) or default)
    if class_name == "T5Tokenizer":
        options["extra_ids"] = int(settings.get("extra_ids", 100))
    # The tokens each class's `convert_from_spm` places at fixed ids (str() of a missing one is "None", as there).
    for name, default in _FIXED_TOKENS.get(class_name, ()):
        options[name] = str(_token_text(settings.get(name, default)))
    if class_name == "PegasusTokenizer":
        options["offset"] = int(settings.get("offset", 103))
        options["mask_token_sent_init"] = _token_text(settings.get("mask_token_sent", "<mask_1>"))
    if class_name == "AlbertTokenizer":
        options["do_lower_case"] = bool(settings.get("do_lower_case", True))
        options["keep_accents"] = bool(settings.get("keep_accents", False))
    if class_name == "DebertaV2Tokenizer":
        options["do_lower_case"] = bool(settings.get("do_lower_case", False))
        options["split_by_punct"] = bool(settings.get("split_by_punct", False))
        options["unk_token"] = str(settings.get("unk_token") or "[UNK]")
    if class_name not in _CLASS_BUILDERS:
        options["legacy"] = bool(settings.get("legacy", True))
    return options


def convert_sentencepiece(model_path: Path, options: dict) -> Conversion:
    model = load_sentencepiece_model(model_path)
    builder = _CLASS_BUILDERS.get(options["class"], _build_from_model_spec)
    tokenizer, derived = builder(model, options)
    derived.setdefault("extra_special_tokens", _control_and_user_pieces(model))
    if token_flags(options["class"]):
        derived.setdefault("special_tokens", token_flags(options["class"]))
    return Conversion(tokenizer, derived)


# ---------------------------------------------------------------- shared pieces


def _control_and_user_pieces(model: SentencePieceModel) -> list[dict]:
    """Control pieces (special) and user-defined pieces (not special), which transformers registers as added tokens."""
    return [
        {"content": piece.piece, "special": piece.type == CONTROL, "normalized": False}
        for piece in model.pieces
        if piece.type in (CONTROL, USER_DEFINED)
    ]


def _scores(model: SentencePieceModel) -> list[tuple[str, float]]:
    return [(piece.piece, piece.score) for piece in model.pieces]


def _precompiled(model: SentencePieceModel):
    charsmap = model.normalizer_spec.precompiled_charsmap
    return normalizers.Precompiled(charsmap) if charsmap else None


def _charsmap(model: SentencePieceModel) -> bytes | None:
    return model.normalizer_spec.precompiled_charsmap or None


def _whitespace_then_metaspace(prepend_scheme: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme, split=True),
        ]
    )


def _unigram_with_metaspace(vocab, unk_id, normalizer, prepend_scheme) -> Tokenizer:
    tokenizer = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = _whitespace_then_metaspace(prepend_scheme)
    tokenizer.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme)
    return tokenizer


def merges_ranked_by_id(vocab: dict[str, int]) -> list[tuple[str, str]]:
    """Every split of a piece into two pieces, ranked by the merged piece's id (transformers' `generate_merges`)."""
    merges = []
    for merged, merged_id in vocab.items():
        local = []
        for index in range(1, len(merged)):
            left, right = merged[:index], merged[index:]
            if left in vocab and right in vocab:
                local.append((left, right, merged_id))
        local.sort(key=lambda item: (vocab[item[0]], vocab[item[1]]))
        merges.extend(local)
    merges.sort(key=lambda item: (item[2], len(item[0]), len(item[1])))
    return [(left, right) for left, right, _ in merges]


def merges_ranked_by_score(model: SentencePieceModel, id_to_token: dict[int, str]) -> list[tuple[str, str]]:
    """Splits of normal pieces into normal pieces, best score first: the order SentencePiece BPE merges in."""
    normal = {
        id_to_token[index]: (piece.score, index)
        for index, piece in enumerate(model.pieces)
        if piece.type == NORMAL and index in id_to_token
    }
    ranked = []
    for token, (score, index) in normal.items():
        for split in range(1, len(token)):
            left, right = token[:split], token[split:]
            if left in normal and right in normal:
                ranked.append((-score, index, left, right))
    ranked.sort()
    return [(left, right) for _, _, left, right in ranked]


# ---------------------------------------------------------------- one builder per class


def _build_xlm_roberta(model: SentencePieceModel, options: dict):
    # fairseq order: <s> <pad> </s> <unk>, then SentencePiece ids 3.. shifted by one, then <mask>.
    vocab = [(options["bos_token"], 0.0), (options["pad_token"], 0.0), (options["eos_token"], 0.0),
             (options["unk_token"], 0.0)]
    vocab += _scores(model)[3:]
    vocab.append((options["mask_token"], 0.0))
    prepend_scheme = "always" if options["add_prefix_space"] else "never"
    return _unigram_with_metaspace(vocab, 3, _precompiled(model), prepend_scheme), {}


def _build_camembert(model: SentencePieceModel, options: dict):
    vocab = [("<s>NOTUSED", 0.0), (options["pad_token"], 0.0), ("</s>NOTUSED", 0.0), (options["unk_token"], 0.0),
             ("<unk>NOTUSED", -100.0)]
    vocab += _scores(model)[1:]
    vocab.append((options["mask_token"], 0.0))
    unk_id = next((index for index, (token, _) in enumerate(vocab) if token == options["unk_token"]), 0)
    prepend_scheme = "always" if options["add_prefix_space"] else "never"
    tokenizer = _unigram_with_metaspace(vocab, unk_id, _precompiled(model), prepend_scheme)
    # CamemBERT's mask token swallows the space before it.
    derived = {"special_tokens": {"mask_token": {"content": options["mask_token"], "lstrip": True, "special": True}}}
    return tokenizer, derived


def _build_t5(model: SentencePieceModel, options: dict):
    extra_ids = options["extra_ids"]
    sentinels = [f"<extra_id_{index}>" for index in range(extra_ids - 1, -1, -1)]
    inputs = ClassInputs(vocab=_scores(model) + [(token, 0.0) for token in sentinels], charsmap=_charsmap(model))
    tokenizer = PIPELINES["T5Tokenizer"](inputs, options)
    extra = _control_and_user_pieces(model)
    if not any("<extra_id_" in entry["content"] for entry in extra):
        extra += [{"content": f"<extra_id_{index}>", "special": True, "normalized": False}
                  for index in range(extra_ids)]
    return tokenizer, {"extra_special_tokens": extra}


def _build_pegasus(model: SentencePieceModel, options: dict):
    # <pad> </s>, the mask tokens, <unk_2> .. <unk_{offset-1}>, then the model's pieces after its <pad> and </s>.
    vocab = [(options["pad_token"], 0.0), (options["eos_token"], 0.0)]
    mask, mask_sent = options["mask_token"], options["mask_token_sent"]
    if mask != "None":
        vocab.append((mask, 0.0))
    if mask_sent not in ("None", mask):
        vocab.append((mask_sent, 0.0))
    vocab += [(f"<unk_{index}>", -100.0) for index in range(2, options["offset"])]
    vocab += _scores(model)[2:]
    tokenizer = PIPELINES["PegasusTokenizer"](ClassInputs(vocab=vocab, charsmap=_charsmap(model)), options)
    pieces = [entry["content"] for entry in _control_and_user_pieces(model)]
    return tokenizer, {"extra_special_tokens": pegasus_extra_tokens(options, pieces)}


def pegasus_extra_tokens(options: dict, source_extras: list[str] | None) -> list[dict]:
    """PegasusTokenizer's extra tokens: <mask_1> (unless the source lists it) and <unk_2> .. <unk_{offset-1}>."""
    sentence_mask = options["mask_token_sent_init"]
    tokens = [sentence_mask] if sentence_mask is not None and (
        source_extras is None or sentence_mask not in source_extras) else []
    tokens += [f"<unk_{index}>" for index in range(2, options["offset"])]
    return [{"content": token, "special": True, "normalized": False} for token in tokens]


def _fairseq_unigram_vocab(model: SentencePieceModel, first: str, options: dict, codes) -> list[tuple[str, float]]:
    # fairseq order: <s> <pad> </s> <unk>, the pieces after SentencePiece's <unk> <s> </s>, the codes, then <mask>.
    vocab = [(options[first], 0.0), (options["pad_token"], 0.0), (options["eos_token"], 0.0),
             (options["unk_token"], 0.0)]
    vocab += _scores(model)[3:]
    vocab += [(code, 0.0) for code in codes]
    vocab.append((options["mask_token"], 0.0))
    return vocab


def _build_mbart(model: SentencePieceModel, options: dict):
    # transformers 5 reads mBART's pieces (a BPE model) with their scores into a Unigram model.
    inputs = ClassInputs(vocab=_fairseq_unigram_vocab(model, "bos_token", options, MBART_LANGUAGE_CODES))
    tokenizer = PIPELINES["MBartTokenizer"](inputs, options)
    codes = [{"content": code, "special": True, "normalized": False} for code in MBART_LANGUAGE_CODES]
    extra = codes + [entry for entry in _control_and_user_pieces(model) if entry["content"] not in MBART_LANGUAGE_CODES]
    return tokenizer, {"extra_special_tokens": extra}


def _build_mbart50(model: SentencePieceModel, options: dict):
    inputs = ClassInputs(vocab=_fairseq_unigram_vocab(model, "cls_token", options, MBART50_LANGUAGE_CODES),
                         charsmap=_charsmap(model))
    tokenizer = PIPELINES["MBart50Tokenizer"](inputs, options)
    return tokenizer, {"extra_special_tokens": _control_and_user_pieces(model)}


def _build_nllb(model: SentencePieceModel, options: dict):
    pieces = {piece.piece: index for index, piece in enumerate(model.pieces)}
    merges = merges_ranked_by_id(pieces)
    vocab = {options["bos_token"]: 0, options["pad_token"]: 1, options["eos_token"]: 2, options["unk_token"]: 3}
    for piece in pieces:
        vocab.setdefault(piece, len(vocab))
    tokenizer = PIPELINES["NllbTokenizer"](ClassInputs(vocab=vocab, merges=merges, charsmap=_charsmap(model)), options)
    # transformers 5 takes the model's control pieces as the extra tokens here, so no language codes are added
    # unless the config names them (checkpoints ship them in tokenizer.json / tokenizer_config.json).
    return tokenizer, {"extra_special_tokens": _control_and_user_pieces(model)}


def _build_llama(model: SentencePieceModel, options: dict):
    vocab = {piece.piece: index for index, piece in enumerate(model.pieces)}
    inputs = ClassInputs(vocab=vocab, merges=merges_ranked_by_id(vocab))
    return PIPELINES["LlamaTokenizer"](inputs, options), {}


def _build_albert(model: SentencePieceModel, options: dict):
    steps = [normalizers.Replace("``", '"'), normalizers.Replace("''", '"')]
    if not options["keep_accents"]:
        steps += [normalizers.NFKD(), normalizers.StripAccents()]
    if options["do_lower_case"]:
        steps.append(normalizers.Lowercase())
    precompiled = _precompiled(model)
    if precompiled is not None:
        steps.append(precompiled)
    prepend_scheme = "always" if options["add_prefix_space"] else "never"
    tokenizer = _unigram_with_metaspace(
        _scores(model), model.trainer_spec.unk_id, normalizers.Sequence(steps), prepend_scheme
    )
    return tokenizer, {}


def _build_deberta_v2(model: SentencePieceModel, options: dict):
    vocab = _scores(model)
    unk_id = next(
        (index for index, (token, score) in enumerate(vocab) if token == options["unk_token"] and score == 0.0),
        model.trainer_spec.unk_id,
    )
    tokenizer = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
    steps = [normalizers.Lowercase()] if options["do_lower_case"] else []
    steps += [
        normalizers.Replace(Regex(r"\s{2,}|[\n\r\t]"), " "),
        normalizers.NFC(),
        normalizers.Strip(left=False, right=True),
    ]
    tokenizer.normalizer = normalizers.Sequence(steps)
    prepend_scheme = "always" if options["add_prefix_space"] else "first"
    splitters = [pre_tokenizers.Punctuation(behavior="isolated")] if options["split_by_punct"] else []
    splitters.append(pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)
    tokenizer.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=prepend_scheme)
    return tokenizer, {}


def _build_from_model_spec(model: SentencePieceModel, options: dict):
    """No known class: follow the model's trainer and normalizer specs, like SentencePieceProcessor does."""
    trainer = model.trainer_spec
    legacy = options.get("legacy", True)
    user_defined = [piece.piece for piece in model.pieces if piece.type == USER_DEFINED]

    if model.is_bpe:
        vocab = {piece.piece: index for index, piece in enumerate(model.pieces)}
        id_to_token = {index: token for token, index in vocab.items()}
        tokenizer = Tokenizer(
            BPE(
                vocab=vocab,
                merges=merges_ranked_by_score(model, id_to_token),
                unk_token=trainer.unk_piece,
                fuse_unk=True,
                byte_fallback=trainer.byte_fallback,
                dropout=None,
                # User-defined pieces must come out whole, never re-merged.
                ignore_merges=bool(user_defined),
            )
        )
    else:
        tokenizer = Tokenizer(Unigram(_scores(model), unk_id=trainer.unk_id, byte_fallback=trainer.byte_fallback))
    apply_processor_spec(tokenizer, model, legacy)

    special_tokens = {}
    for name, piece_id, piece in (
        ("bos_token", trainer.bos_id, trainer.bos_piece),
        ("eos_token", trainer.eos_id, trainer.eos_piece),
        ("unk_token", trainer.unk_id, trainer.unk_piece),
    ):
        if piece_id >= 0:
            special_tokens[name] = piece
    # User-defined pieces are split out by the pre-tokenizer; they are not special tokens here.
    extra = [entry for entry in _control_and_user_pieces(model) if entry["special"]]
    return tokenizer, {"special_tokens_defaults": special_tokens, "extra_special_tokens": extra}


def apply_processor_spec(tokenizer: Tokenizer, model: SentencePieceModel, legacy: bool = True) -> None:
    """Give `tokenizer` the normalizer, pre-tokenizer and decoder that make it encode like
    `SentencePieceProcessor.encode` with `model`'s normalizer spec (each chunk between added tokens on its own
    when `legacy`), user-defined pieces kept whole."""
    spec = model.normalizer_spec
    trainer = model.trainer_spec
    user_defined = [piece.piece for piece in model.pieces if piece.type == USER_DEFINED]
    steps = []
    if spec.precompiled_charsmap:
        steps.append(normalizers.Precompiled(spec.precompiled_charsmap))
    if spec.remove_extra_whitespaces:
        # SentencePiece only squeezes spaces; newlines and tabs are left alone.
        steps += [normalizers.Replace(Regex(r"\A +| +\z"), ""), normalizers.Replace(Regex(" {2,}"), " ")]
    if spec.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPIECE_UNDERLINE))
    if spec.add_dummy_prefix and legacy:
        # Metaspace skips the dummy prefix when the text already starts with "▁"; SentencePiece does not.
        steps.append(normalizers.Replace(Regex(r"\A▁"), "▁▁"))
    tokenizer.normalizer = normalizers.Sequence(steps)

    splitters = []
    if spec.add_dummy_prefix:
        splitters.append(
            pre_tokenizers.Metaspace(
                replacement=SPIECE_UNDERLINE, prepend_scheme="always" if legacy else "first", split=False
            )
        )
    if user_defined:
        pattern = "|".join(re.escape(piece) for piece in sorted(user_defined, key=len, reverse=True))
        splitters.append(pre_tokenizers.Split(Regex(pattern), behavior="isolated"))
    if splitters:
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence(splitters)

    steps = [decoders.Replace(SPIECE_UNDERLINE, " ")]
    if trainer.byte_fallback:
        steps.append(decoders.ByteFallback())
    if spec.add_dummy_prefix:
        steps += [decoders.Fuse(), decoders.Strip(content=" ", left=1)]
    elif trainer.byte_fallback:
        steps.append(decoders.Fuse())
    tokenizer.decoder = decoders.Sequence(steps)


_CLASS_BUILDERS = {
    "XLMRobertaTokenizer": _build_xlm_roberta,
    "CamembertTokenizer": _build_camembert,
    "T5Tokenizer": _build_t5,
    "PegasusTokenizer": _build_pegasus,
    "MBartTokenizer": _build_mbart,
    "MBart50Tokenizer": _build_mbart50,
    "NllbTokenizer": _build_nllb,
    "LlamaTokenizer": _build_llama,
    "AlbertTokenizer": _build_albert,
    "DebertaV2Tokenizer": _build_deberta_v2,
}
