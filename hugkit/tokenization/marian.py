"""MarianTokenizer (opus-mt): source.spm for inputs, target.spm for targets, ids from vocab.json.

As transformers 5's (Python) MarianTokenizer: inputs are tokenized with the source SentencePiece model and targets
(``tokenizer(text_target=...)``) with the target model; both look pieces up in vocab.json (targets in
target_vocab.json with ``separate_vocabs``), and ``</s>`` ends every sequence (a pair is ``A B </s>``). Special
tokens keep vocab.json's ids on both sides. ``decode`` runs transformers' rule: special tokens are written as they
are (followed by a space), the pieces between them are decoded by a SentencePiece model, and the whole is stripped;
the model is the source one unless ``separate_vocabs`` (pass ``use_source_tokenizer=`` to choose). transformers 5
has no ``as_target_tokenizer()``; ``text_target=`` is the way to tokenize targets, here too. See converters/marian.py
for how the engines reproduce SentencePiece and where they knowingly differ.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from tokenizers import processors

from . import cache
from .base import PreTrainedTokenizerFast
from .config_files import TokenizerFiles, merge_settings
from .converters.marian import LANGUAGE_CODE, hidden_code
from .families import TokenizerFamily
from .inputs import to_python
from .sentencepiece_model import CONTROL, UNKNOWN, load_sentencepiece_model

logger = logging.getLogger(__name__)


def _starts_with_code(item) -> bool:
    if isinstance(item, (tuple, list)):
        return any(_starts_with_code(part) for part in item)
    return item.startswith(">>") and "<<" in item

SPIECE_UNDERLINE = "▁"


class _PieceDecoder:
    """`SentencePieceProcessor.decode_pieces` for one model: control pieces vanish, <unk> reads " ⁇ ", a piece the
    model lacks is written as spelled, and leading whitespace is dropped until something visible was written."""

    def __init__(self, spm_path):
        model = load_sentencepiece_model(spm_path)
        self.control = {piece.piece for piece in model.pieces if piece.type == CONTROL}
        self.unknown = {piece.piece for piece in model.pieces if piece.type == UNKNOWN}
        self.known = {piece.piece for piece in model.pieces} - self.control - self.unknown
        spec = model.normalizer_spec
        self.strip_all = spec.remove_extra_whitespaces
        self.strip_one = spec.add_dummy_prefix

    def __call__(self, pieces: list[str]) -> str:
        text = ""
        for piece in pieces:
            if piece in self.control:
                continue
            if piece in self.unknown:
                text += " \u2047 "
            elif piece not in self.known:
                text += piece
            else:
                if not text:
                    if self.strip_all:
                        piece = piece.lstrip(SPIECE_UNDERLINE)
                    elif self.strip_one:
                        piece = piece.removeprefix(SPIECE_UNDERLINE)
                text += piece.replace(SPIECE_UNDERLINE, " ")
        return text


class MarianTokenizer(PreTrainedTokenizerFast):
    """Marian's two-model tokenizer; built by `AutoTokenizer.from_pretrained` from an opus-mt folder."""

    def __init__(self, source_engine, target_engine, *, encoder: dict[str, int],
                 target_encoder: dict[str, int] | None, spm_files: tuple[str, str], separate_vocabs: bool = False,
                 source_lang: str | None = None, target_lang: str | None = None, **kwargs):
        kwargs.setdefault("model_max_length", 512)
        super().__init__(source_engine, source_lang=source_lang, target_lang=target_lang,
                         separate_vocabs=separate_vocabs, **kwargs)
        self.encoder = encoder
        self.target_encoder = target_encoder
        self.separate_vocabs = bool(separate_vocabs)
        self.source_lang, self.target_lang = source_lang, target_lang
        self.spm_files = [str(spm_files[0]), str(spm_files[1])]
        self.supported_language_codes = [] if self.separate_vocabs else [
            token for token in encoder if token.startswith(">>") and token.endswith("<<")]
        self._decoder = {index: token for token, index in (target_encoder if self.separate_vocabs else encoder).items()}
        self._piece_decoders = (_PieceDecoder(spm_files[0]), _PieceDecoder(spm_files[1]))
        self._decode_use_source_tokenizer = False

        self._source, self._target = source_engine, target_engine
        # Language codes are the engines' own added tokens (under hidden spellings); the special tokens are the
        # tokenizer's, added to both engines.
        codes = set(encoder) | set(target_encoder or ())
        self._shown_codes = {hidden_code(code): code for code in codes if LANGUAGE_CODE.fullmatch(code)}
        self._internal_tokens = set(self._shown_codes)
        for _, token in sorted(source_engine.get_added_tokens_decoder().items()):
            if token.content not in self._internal_tokens:
                target_engine.add_tokens([token])
        # Special tokens keep the source ids on the target side (transformers looks them up there).
        self._target_remap = {}
        for target_id, token in target_engine.get_added_tokens_decoder().items():
            source_id = source_engine.token_to_id(token.content)
            if token.content not in self._internal_tokens and source_id is not None and source_id != target_id:
                self._target_remap[target_id] = source_id
        eos, eos_id = self.eos_token, self.eos_token_id
        for engine in (source_engine, target_engine):
            engine.post_processor = processors.TemplateProcessing(
                single=["$A", eos], pair=["$A", "$B", eos], special_tokens=[(eos, eos_id)])

    # ------------------------------------------------------------------ modes and ids

    def _switch_to_input_mode(self) -> None:
        self._backend = self._source

    def _switch_to_target_mode(self) -> None:
        self._backend = self._target

    def update_post_processor(self) -> None:
        """Marian always ends a sequence with </s> (set in __init__)."""

    def _run_engine(self, batch, *args):
        # transformers takes a leading language code off the text; the engine knows it under its hidden spelling.
        if any(_starts_with_code(item) for item in batch):
            batch = [self._rewrite_code(item) for item in batch]
        return super()._run_engine(batch, *args)

    def _rewrite_code(self, item):
        if isinstance(item, tuple):
            return tuple(self._rewrite_code(part) for part in item)
        if isinstance(item, list):  # pre-split words: transformers tokenizes each word on its own
            return [self._rewrite_code(word) for word in item]
        if not (item.startswith(">>") and "<<" in item):
            return item
        end = item.index("<<") + 2
        code, rest = item[:end], item[end:]
        if code in self._current_encoder():
            return hidden_code(code) + rest
        return str(self.unk_token) + rest

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        tokens = super().tokenize(text, pair, add_special_tokens=add_special_tokens, **kwargs)
        tokens = [self._shown_codes.get(token, token) for token in tokens]
        if _starts_with_code(text) and tokens and tokens[0] == str(self.unk_token):
            tokens[0] = text[:text.index("<<") + 2]  # a code the vocabulary lacks, shown as written
        return tokens

    def _current_encoder(self) -> dict[str, int]:
        return self.target_encoder if self.separate_vocabs and self._backend is self._target else self.encoder

    def _rows_ids(self, encodings) -> list[list[int]]:
        rows = super()._rows_ids(encodings)
        unk = self.unk_token_id
        encoder = self._current_encoder()
        remap = self._target_remap if self._backend is self._target else None
        for row, (ids, encoding) in enumerate(zip(rows, encodings)):
            if unk in ids:
                # A span the model cannot segment is spelled out in the unknown token; transformers looks the
                # spelling up in the vocabulary (the other side's pieces of a shared vocabulary are there).
                ids = rows[row] = [encoder.get(token, unk) if index == unk else index
                                   for index, token in zip(ids, encoding.tokens)]
            if remap:
                rows[row] = [remap.get(index, index) for index in ids]
        return rows

    def get_vocab(self) -> dict[str, int]:
        return dict(self.encoder, **self.added_tokens_encoder)

    def __len__(self) -> int:
        return len(self.get_vocab())

    def _token_to_id(self, token: str) -> int | None:
        if not isinstance(token, str):
            raise TypeError(f"a token must be a str, got {type(token).__name__} {token!r}")
        added = self.added_tokens_encoder
        if token in added:
            return added[token]
        encoder = self._current_encoder()
        return encoder.get(token, encoder.get(str(self._special_tokens.get("unk_token"))))

    def _encode(self, text, text_pair, **options):
        encoded = super()._encode(text, text_pair, **options)
        if "special_tokens_mask" in encoded:
            # transformers marks every special id in the ids (typed in the text or added), except <unk>.
            special = set(self.all_special_ids) - {self.unk_token_id}
            ids = encoded["input_ids"]
            tensor = None if isinstance(ids, list) else ("pt" if type(ids).__module__.startswith("torch") else "np")
            rows = to_python(ids)
            flat = rows and not isinstance(rows[0], list)
            rows = [rows] if flat else rows
            mask = [[1 if index in special else 0 for index in row] for row in rows]
            mask = mask[0] if flat else mask
            if tensor is not None:
                import numpy as np

                mask = np.asarray(mask, dtype=np.asarray(to_python(encoded["special_tokens_mask"])).dtype)
                if tensor == "pt":
                    import torch

                    mask = torch.from_numpy(mask)
            encoded["special_tokens_mask"] = mask
        return self._python_layout(encoded)

    @staticmethod
    def _python_layout(encoded):
        """transformers' Python tokenizers order the outputs differently, and count `length` before padding in a
        batch (after it for one text, as an int)."""
        ids = encoded["input_ids"]
        batched = isinstance(ids, list) and bool(ids) and isinstance(ids[0], list)
        if "length" in encoded and isinstance(ids, list):
            if batched:
                encoded["length"] = [len(encoding.ids) for encoding in encoded._encodings]
            else:
                encoded["length"] = len(ids)
        order = ["input_ids", "token_type_ids", "special_tokens_mask"]
        order += ["length", "attention_mask"] if batched or not isinstance(ids, list) else ["attention_mask", "length"]
        for key in order + [key for key in list(encoded) if key not in order]:
            if key in encoded:
                encoded[key] = encoded.pop(key)
        return encoded

    @property
    def added_tokens_decoder(self):
        return {index: token for index, token in self._source.get_added_tokens_decoder().items()
                if token.content not in self._internal_tokens}

    @property
    def decoder(self) -> dict[int, str]:
        """id -> token of the vocabulary decoding reads (target_vocab.json with separate_vocabs), as transformers."""
        return self._decoder

    def get_src_vocab(self) -> dict[str, int]:
        return dict(self.encoder, **self.added_tokens_encoder)

    def get_tgt_vocab(self) -> dict[str, int]:
        return dict(self.target_encoder if self.separate_vocabs else self.encoder, **self.added_tokens_encoder)

    def convert_ids_to_tokens(self, ids, skip_special_tokens: bool = False):
        ids = to_python(ids)
        single = isinstance(ids, int)
        if not single and not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids must be an int or a list of int, got {type(ids).__name__}")
        added = self.added_tokens_decoder
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        tokens = []
        for index in [ids] if single else ids:
            index = int(index)
            if index in skip:
                continue
            if index in added:
                tokens.append(added[index].content)
            else:
                tokens.append(self._decoder.get(index, self.unk_token))
        return tokens[0] if single else tokens

    # ------------------------------------------------------------------ decoding

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """transformers' rule: special tokens as they are plus a space, SentencePiece for the rest, then strip."""
        decode_pieces = self._piece_decoders[0 if self._decode_use_source_tokenizer else 1]
        special = set(self.all_special_tokens)
        out, run = "", []
        for token in tokens:
            if token in special:
                out += decode_pieces(run) + token + " "
                run = []
            else:
                run.append(token)
        out += decode_pieces(run)
        return out.replace(SPIECE_UNDERLINE, " ").strip()

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
               use_source_tokenizer: bool | None = None, **kwargs) -> str | list[str]:
        """Text of one sequence of ids; targets are read with the target model unless `use_source_tokenizer`
        (default: the source model for a shared vocabulary, as transformers 5 does)."""
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        token_ids = to_python(token_ids)
        if isinstance(token_ids, int) and not isinstance(token_ids, bool):
            token_ids = [token_ids]
        if not isinstance(token_ids, (list, tuple)):
            raise TypeError(f"token_ids must be an int, a list of ints or a batch of lists, got "
                            f"{type(token_ids).__name__}")
        if token_ids and isinstance(token_ids[0], (list, tuple)):
            return self.batch_decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces,
                                     use_source_tokenizer=use_source_tokenizer)
        for index in token_ids:
            if isinstance(index, bool) or not isinstance(index, int) or index < 0:
                raise TypeError(f"token_ids must be non-negative ints, found {index!r}")
        self._decode_use_source_tokenizer = (not self.separate_vocabs) if use_source_tokenizer is None \
            else bool(use_source_tokenizer)
        text = self.convert_tokens_to_string(self.convert_ids_to_tokens(token_ids, skip_special_tokens))
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None \
            else clean_up_tokenization_spaces
        return self.clean_up_tokenization(text) if clean else text

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None, use_source_tokenizer: bool | None = None,
                     **kwargs) -> list[str]:
        sequences = to_python(sequences)
        if not isinstance(sequences, (list, tuple)):
            raise TypeError(f"sequences must be a list of lists of ints, got {type(sequences).__name__}")
        if sequences and not isinstance(sequences[0], (list, tuple)):
            sequences = [sequences]
        return [self.decode(list(sequence), skip_special_tokens, clean_up_tokenization_spaces,
                            use_source_tokenizer=use_source_tokenizer) for sequence in sequences]

    # ------------------------------------------------------------------ saving

    def save_pretrained(self, save_directory, legacy_format=None, filename_prefix: str | None = None,
                        push_to_hub: bool = False, **kwargs) -> tuple[str, ...]:
        """Write Marian's own files (both SentencePiece models, the vocabularies, tokenizer_config.json)."""
        if push_to_hub:
            raise NotImplementedError("hugkit saves locally only; upload the folder with huggingface_hub.")
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_pretrained needs a directory, but {directory} is a file")
        directory.mkdir(parents=True, exist_ok=True)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        written = []
        for source, name in zip(self.spm_files, ("source.spm", "target.spm")):
            target = directory / f"{prefix}{name}"
            if Path(source).resolve() != target.resolve():
                shutil.copyfile(source, target)
            written.append(str(target))
        vocabularies = [("vocab.json", self.encoder)]
        if self.separate_vocabs:
            vocabularies.append(("target_vocab.json", self.target_encoder))
        for name, vocab in vocabularies:
            path = directory / f"{prefix}{name}"
            path.write_text(json.dumps(vocab, indent=2, ensure_ascii=False), encoding="utf-8")
            written.append(str(path))
        config = {key: value for key, value in self.init_kwargs.items() if _json_ready(value)}
        config.update(tokenizer_class="MarianTokenizer", model_max_length=self.model_max_length,
                      separate_vocabs=self.separate_vocabs, source_lang=self.source_lang,
                      target_lang=self.target_lang, clean_up_tokenization_spaces=self.clean_up_tokenization_spaces,
                      **self.special_tokens_map)
        if self.extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        path = directory / f"{prefix}tokenizer_config.json"
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(str(path))
        logger.info("Saved Marian tokenizer files to %s", directory)
        return tuple(written)


def _json_ready(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True


def load_marian(files: TokenizerFiles, family: TokenizerFamily, overrides: dict, name_or_path: str):
    """Build a MarianTokenizer from a folder with source.spm, target.spm and vocab.json (the loader checked)."""
    from .converters.marian import check_vocab, marian_engine

    merged = merge_settings(files, family, overrides, uses_tokenizer_json=False, derived={})
    settings = dict(merged.settings)
    separate = bool(settings.pop("separate_vocabs", False))
    encoder = _read_vocab(files.path("vocab.json"))
    check_vocab(encoder, "vocab.json")
    target_encoder = None
    if separate:
        target_path = files.path("target_vocab.json")
        if target_path is None:
            raise OSError(f"{files.folder} sets separate_vocabs but has no target_vocab.json; it holds: "
                          f"{files.describe()}")
        target_encoder = _read_vocab(target_path)
        check_vocab(target_encoder, "target_vocab.json")
    unk = str(settings.get("unk_token") or "<unk>")
    if unk not in encoder:
        raise ValueError(f"vocab.json must hold the unknown token {unk!r}")
    source_spm, target_spm = files.path("source.spm"), files.path("target.spm")
    specials = [str(settings[name]) for name in PreTrainedTokenizerFast.SPECIAL_TOKENS_ATTRIBUTES
                if settings.get(name) is not None]
    specials += [str(token) for token in settings.get("extra_special_tokens") or []]
    specials += [token.content for token in merged.added_tokens_decoder.values()]
    engines = []
    for spm, vocab, vocab_file in ((source_spm, encoder, files.path("vocab.json")),
                                   (target_spm, target_encoder or encoder,
                                    files.path("target_vocab.json") if separate else files.path("vocab.json"))):
        keep = sorted(set(specials))
        key = cache.conversion_key("marian", [spm, vocab_file], {"unk_token": unk, "keep": keep})
        engines.append(_cached_engine(key, lambda spm=spm, vocab=vocab, keep=keep: marian_engine(spm, vocab, unk,
                                                                                                  keep)))
    for reserved in ("tokenizer_object", "tokenizer_file", "name_or_path", "tokenizer_class", "target_vocab_file",
                     "sp_model_kwargs", "source_spm", "target_spm", "vocab"):
        settings.pop(reserved, None)
    return MarianTokenizer(
        engines[0], engines[1], encoder=encoder, target_encoder=target_encoder,
        spm_files=(str(source_spm), str(target_spm)), separate_vocabs=separate, name_or_path=name_or_path,
        tokenizer_class="MarianTokenizer", added_tokens_decoder=merged.added_tokens_decoder,
        model_input_names=settings.pop("model_input_names", list(family.model_input_names)), **settings,
    )


def _read_vocab(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


def _cached_engine(key: str, build):
    from tokenizers import Tokenizer

    cached = cache.load_cached(key)
    if cached is not None:
        try:
            return Tokenizer.from_file(str(cached[0]))
        except Exception as error:  # a damaged entry is rebuilt below
            logger.info("Rebuilding damaged tokenizer cache entry %s: %s", cached[0], error)
    engine = build()
    cache.store(key, engine.to_str(), {})
    return engine

