"""VitsTokenizer: the character tokenizer of VITS / MMS-TTS checkpoints (vocab.json of characters).

Same ids as transformers' VitsTokenizer. The steps, in its order:

1. ``normalize``: lowercase, except where a vocabulary entry (or added token) matches as written;
2. ``language == "ron"``: the comma-below t becomes the cedilla t the Romanian models were trained on;
3. ``is_uroman`` and non-ASCII text: romanize with the ``uroman`` package (transformers passes such text on
   unchanged when uroman is missing, which the model cannot read; hugkit raises an error instead);
4. ``phonemize``: phonemes from espeak through the ``phonemizer`` package; else, when normalizing, drop the
   characters that are not in the vocabulary and strip the ends;
5. split around added tokens (the special tokens are added tokens; with MMS-TTS's pad token "k", every "k");
   each other piece becomes its characters, with the blank (the vocabulary's id 0) between and around them
   when ``add_blank`` is true (transformers' slow-tokenizer rules, which is why they are kept);
6. characters outside the vocabulary (possible only without normalization) become the unknown token.

Pure Python (a VITS vocabulary is a few dozen characters); returns hugkit's BatchEncoding.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from .batch_encoding import BatchEncoding
from .padding import VERY_LARGE_INTEGER, resolve_strategies

VOCAB_FILE = "vocab.json"
CONFIG_FILE = "tokenizer_config.json"
_SPECIAL_ORDER = ("unk_token", "pad_token")  # transformers adds missing special tokens in this order
_NON_ROMAN = re.compile(r"[^\x00-\x7F]")


def _content(token: Any) -> str | None:
    """A special-token setting as a string (configs may hold AddedToken dicts)."""
    if isinstance(token, dict):
        return token.get("content")
    return None if token is None else str(token)


class VitsTokenizer:
    vocab_files_names = {"vocab_file": VOCAB_FILE}
    model_input_names = ["input_ids", "attention_mask"]
    pad_token_type_id = 0
    is_fast = False

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        pad_token: Any = "<pad>",
        unk_token: Any = "<unk>",
        language: str | None = None,
        add_blank: bool = True,
        normalize: bool = True,
        phonemize: bool = True,
        is_uroman: bool = False,
        *,
        added_tokens_decoder: dict | None = None,
        model_max_length: int | None = None,
        padding_side: str = "right",
        truncation_side: str = "right",
        name_or_path: str = "",
        **kwargs: Any,
    ) -> None:
        with open(vocab_file, encoding="utf-8") as handle:
            encoder = json.load(handle)
        if not isinstance(encoder, dict) or not all(isinstance(v, int) for v in encoder.values()):
            raise ValueError(f"{vocab_file} must map characters to integer ids, e.g. {{\"a\": 1}}.")
        self.encoder: dict[str, int] = encoder
        self.decoder: dict[int, str] = {v: k for k, v in encoder.items()}
        self.language = language
        self.add_blank = add_blank
        self.normalize = normalize
        self.phonemize = phonemize
        self.is_uroman = is_uroman
        self.pad_token = _content(pad_token)
        self.unk_token = _content(unk_token)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        if padding_side not in ("left", "right") or truncation_side not in ("left", "right"):
            raise ValueError(f"padding_side and truncation_side must be 'left' or 'right', got {padding_side!r}, {truncation_side!r}.")
        self.padding_side = padding_side
        self.truncation_side = truncation_side
        self.name_or_path = name_or_path
        self.init_kwargs = dict(kwargs)  # kept for save_pretrained
        # Added tokens: those saved with the tokenizer, then any special token not yet known (transformers' order).
        self.added_tokens_encoder: dict[str, int] = {}
        self._strip: dict[str, tuple[bool, bool]] = {}
        for index, token in sorted((int(i), t) for i, t in (added_tokens_decoder or {}).items()):
            content = _content(token)
            self.added_tokens_encoder[content] = index
            if isinstance(token, dict):
                self._strip[content] = (bool(token.get("lstrip")), bool(token.get("rstrip")))
        for name in _SPECIAL_ORDER:
            token = getattr(self, name)
            if token and token not in self.added_tokens_encoder:
                self.added_tokens_encoder[token] = self.encoder.get(token, len(self.get_vocab()))
        self._update_added_tokens()

    def _update_added_tokens(self) -> None:
        self.added_tokens_encoder = dict(sorted(self.added_tokens_encoder.items(), key=lambda item: item[1]))
        self.added_tokens_decoder = {index: token for token, index in self.added_tokens_encoder.items()}
        alternatives = sorted(self.added_tokens_encoder, key=len, reverse=True)
        self._added_pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        # normalize_text tries the vocabulary, then the added tokens, in order, at each position
        self._words_by_first: dict[str, list[str]] = {}
        for word in [*self.encoder, *self.added_tokens_encoder]:
            if word:
                self._words_by_first.setdefault(word[0], []).append(word)

    # --- loading and saving -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *inputs: Any, **kwargs: Any) -> "VitsTokenizer":
        if inputs:
            raise TypeError("VitsTokenizer.from_pretrained takes tokenizer settings as keyword arguments only")
        hub = {k: kwargs.pop(k) for k in ("revision", "subfolder", "cache_dir", "local_files_only", "token") if k in kwargs}
        for ignored in ("use_fast", "trust_remote_code", "force_download", "proxies", "resume_download", "_from_pipeline",
                        "_from_auto", "_commit_hash", "use_auth_token", "config", "tokenizer_type", "gguf_file"):
            kwargs.pop(ignored, None)
        folder = Path(os.fspath(pretrained_model_name_or_path))
        if not folder.is_dir():
            from ..hub import resolve

            folder = Path(resolve(os.fspath(pretrained_model_name_or_path), allow_patterns=[
                VOCAB_FILE, CONFIG_FILE, "special_tokens_map.json", "added_tokens.json", "config.json"], **hub))
        return cls._from_folder(folder, os.fspath(pretrained_model_name_or_path), kwargs)

    @classmethod
    def _from_folder(cls, folder: Path, name: str, overrides: dict[str, Any]) -> "VitsTokenizer":
        vocab = folder / VOCAB_FILE
        if not vocab.is_file():
            present = ", ".join(sorted(p.name for p in folder.iterdir())) or "nothing"
            raise OSError(f"A VitsTokenizer needs {VOCAB_FILE} (its characters), which {folder} lacks. It holds: {present}.")
        settings = _read_json_object(folder / CONFIG_FILE)
        for key in ("tokenizer_class", "auto_map", "name_or_path", "backend", "vocab_file"):
            settings.pop(key, None)
        if "added_tokens_decoder" not in settings:  # legacy files, read only when the config has no added tokens
            for key, value in _read_json_object(folder / "special_tokens_map.json").items():
                settings.setdefault(key, value)
            legacy = _read_json_object(folder / "added_tokens.json")
            if legacy:
                settings["added_tokens_decoder"] = {index: content for content, index in legacy.items()}
        settings.update(overrides)
        return cls(vocab, name_or_path=name, **settings)

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> tuple[str, ...]:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        vocab = directory / VOCAB_FILE
        vocab.write_text(json.dumps(self.encoder, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        config = {
            **self.init_kwargs,
            "add_blank": self.add_blank,
            "added_tokens_decoder": {
                str(index): {"content": token, "lstrip": self._strip.get(token, (False, False))[0], "normalized": False,
                             "rstrip": self._strip.get(token, (False, False))[1], "single_word": False, "special": True}
                for index, token in self.added_tokens_decoder.items()
            },
            "is_uroman": self.is_uroman,
            "language": self.language,
            "model_max_length": self.model_max_length,
            "normalize": self.normalize,
            "pad_token": self.pad_token,
            "phonemize": self.phonemize,
            "tokenizer_class": "VitsTokenizer",
            "unk_token": self.unk_token,
        }
        if self.padding_side != "right":
            config["padding_side"] = self.padding_side
        path = directory / CONFIG_FILE
        path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
        return str(path), str(vocab)

    # --- vocabulary -------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    def get_vocab(self) -> dict[str, int]:
        vocab = {self.decoder.get(i): i for i in range(self.vocab_size)}
        vocab.update(getattr(self, "added_tokens_encoder", {}))
        return vocab

    def __len__(self) -> int:
        return len(self.get_vocab())

    @property
    def pad_token_id(self) -> int | None:
        return self.convert_tokens_to_ids(self.pad_token) if self.pad_token is not None else None

    @property
    def unk_token_id(self) -> int | None:
        return self.convert_tokens_to_ids(self.unk_token) if self.unk_token is not None else None

    @property
    def all_special_tokens(self) -> list[str]:
        return [t for t in dict.fromkeys((self.unk_token, self.pad_token)) if t is not None]

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int]:
        if isinstance(tokens, str) or tokens is None:
            return self._token_to_id(tokens)
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str | None) -> int | None:
        if token in self.added_tokens_encoder:
            return self.added_tokens_encoder[token]
        if token in self.encoder:
            return self.encoder[token]
        return self.added_tokens_encoder.get(self.unk_token, self.encoder.get(self.unk_token))

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        if isinstance(ids, int):
            return self.added_tokens_decoder.get(ids, self.decoder.get(ids))
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        return [self.added_tokens_decoder.get(i, self.decoder.get(i)) for i in map(int, ids) if i not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        if self.add_blank and len(tokens) > 1:
            tokens = tokens[1::2]  # the characters sit between the blanks
        return "".join(tokens)

    # --- text -> tokens ---------------------------------------------------------------------------
    def normalize_text(self, text: str) -> str:
        """Lowercase, keeping any vocabulary entry or added token that matches as written."""
        pieces, i = [], 0
        while i < len(text):
            word = next((w for w in self._words_by_first.get(text[i], ()) if text.startswith(w, i)), None)
            if word is not None:
                pieces.append(word)
                i += len(word)
            else:
                pieces.append(text[i].lower())
                i += 1
        return "".join(pieces)

    def prepare_for_tokenization(self, text: str, normalize: bool | None = None) -> str:
        normalize = self.normalize if normalize is None else normalize
        if normalize:
            text = self.normalize_text(text)
        if self.language == "ron":
            text = text.replace("ț", "ţ")
        if self.is_uroman and _NON_ROMAN.search(text):
            text = _romanize(text)
        if self.phonemize:
            text = re.sub(r"\s+", " ", _phonemize(text))
        elif normalize:
            text = "".join(char for char in text if char in self.encoder).strip()
        return text

    def tokenize(self, text: str, normalize: bool | None = None, **kwargs: Any) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"VitsTokenizer takes text as a str (or a list of str), got {type(text).__name__}: {text!r}.")
        if kwargs:
            raise TypeError(f"VitsTokenizer.tokenize got unexpected keyword arguments: {sorted(kwargs)}.")
        text = self.prepare_for_tokenization(text, normalize)
        tokens: list[str] = []
        for piece, is_added in self._split_on_added_tokens(text):
            tokens.extend([piece] if is_added else self._characters(piece))
        return tokens

    def _split_on_added_tokens(self, text: str) -> list[tuple[str, bool]]:
        if self._added_pattern is None or not text:
            return [(text, False)] if text else []
        pieces: list[list] = []
        position = 0
        for match in self._added_pattern.finditer(text):
            pieces.append([text[position : match.start()], False])
            pieces.append([match.group(), True])
            position = match.end()
        pieces.append([text[position:], False])
        for i, (piece, is_added) in enumerate(pieces):  # an added token's lstrip / rstrip eat the spaces beside it
            lstrip, rstrip = self._strip.get(piece, (False, False)) if is_added else (False, False)
            if lstrip and i > 0:
                pieces[i - 1][0] = pieces[i - 1][0].rstrip()
            if rstrip and i + 1 < len(pieces):
                pieces[i + 1][0] = pieces[i + 1][0].lstrip()
        return [(piece, is_added) for piece, is_added in pieces if piece]

    def _characters(self, text: str) -> list[str]:
        characters = list(text)
        if not self.add_blank:
            return characters
        blank = self.decoder.get(0)
        spaced = [blank] * (2 * len(characters) + 1)
        spaced[1::2] = characters
        return spaced

    # --- calling ----------------------------------------------------------------------------------
    def encode(self, text: str, normalize: bool | None = None, **kwargs: Any) -> list[int]:
        return self(text, normalize=normalize, **kwargs)["input_ids"]

    def __call__(
        self,
        text: str | list[str] | None = None,
        *,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_attention_mask: bool | None = None,
        normalize: bool | None = None,
        add_special_tokens: bool = True,  # VITS adds none; accepted as transformers does
        **kwargs: Any,
    ) -> BatchEncoding:
        if kwargs:
            raise TypeError(f"VitsTokenizer got unexpected keyword arguments: {sorted(kwargs)}.")
        batched = isinstance(text, (list, tuple))
        texts = list(text) if batched else [text]
        for item in texts:
            if not isinstance(item, str):
                raise TypeError(
                    f"VitsTokenizer takes text as a str or a list of str, got {type(item).__name__}: {item!r}."
                )
        strategies = resolve_strategies(padding, truncation, max_length, pad_to_multiple_of, self.model_max_length)
        rows = [self.convert_tokens_to_ids(self.tokenize(item, normalize=normalize)) for item in texts]
        if strategies.truncation != "do_not_truncate" and strategies.max_length is not None:
            limit = strategies.max_length
            rows = [row[:limit] if self.truncation_side == "right" else row[max(len(row) - limit, 0):] for row in rows]
        data: dict[str, Any] = {"input_ids": rows}
        if return_attention_mask is None or return_attention_mask:
            data["attention_mask"] = [[1] * len(row) for row in rows]
        if strategies.padding != "do_not_pad":
            from .pad_inputs import pad_encoded_inputs

            data = dict(pad_encoded_inputs(
                self, data, strategies.padding, strategies.max_length, pad_to_multiple_of, padding_side,
                return_attention_mask is not False, None,
            ))
        if return_tensors is not None and batched and len({len(row) for row in data["input_ids"]}) > 1:
            raise ValueError(
                f"Cannot make one tensor of {len(rows)} texts of different lengths "
                f"({sorted({len(row) for row in data['input_ids']})} ids); pass padding=True."
            )
        if not batched:
            data = {key: value[0] for key, value in data.items()}
        return BatchEncoding(data, tensor_type=return_tensors, prepend_batch_axis=not batched and return_tensors is not None)

    def pad(self, encoded_inputs: Any, padding: bool | str = True, max_length: int | None = None,
            pad_to_multiple_of: int | None = None, padding_side: str | None = None,
            return_attention_mask: bool | None = None, return_tensors: str | None = None) -> BatchEncoding:
        from .pad_inputs import pad_encoded_inputs

        return pad_encoded_inputs(self, encoded_inputs, padding, max_length, pad_to_multiple_of, padding_side,
                                  return_attention_mask, return_tensors)

    def _check_pad_token(self) -> None:
        if self.pad_token_id is None:
            raise ValueError("Asking to pad but this VitsTokenizer has no pad_token. Pass pad_token= when loading it.")

    # --- ids -> text ------------------------------------------------------------------------------
    def decode(self, token_ids: Any, skip_special_tokens: bool = False, **kwargs: Any) -> str:
        if hasattr(token_ids, "tolist"):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        tokens = self.convert_ids_to_tokens(list(token_ids), skip_special_tokens=skip_special_tokens)
        return self.convert_tokens_to_string([t for t in tokens if t is not None])

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False, **kwargs: Any) -> list[str]:
        if hasattr(sequences, "tolist"):
            sequences = sequences.tolist()
        return [self.decode(row, skip_special_tokens=skip_special_tokens, **kwargs) for row in sequences]

    def __repr__(self) -> str:
        return (f"VitsTokenizer(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, add_blank={self.add_blank}, "
                f"normalize={self.normalize}, phonemize={self.phonemize}, is_uroman={self.is_uroman})")


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, found {type(value).__name__}.")
    return value


def _romanize(text: str) -> str:
    try:
        import uroman
    except ImportError:
        sample = "".join(dict.fromkeys(_NON_ROMAN.findall(text)))[:10]
        raise ImportError(
            f"This VITS tokenizer (is_uroman=True) reads romanized text, but the text has non-Roman characters "
            f"({sample!r}) and the `uroman` package is not installed. Install it (pip install uroman) to romanize "
            "automatically, or romanize the text yourself first (https://github.com/isi-nlp/uroman)."
        ) from None
    return uroman.Uroman().romanize_string(text)


def _phonemize(text: str) -> str:
    try:
        import phonemizer
    except ImportError:
        raise ImportError(
            "This VITS tokenizer has phonemize=True: it reads espeak phonemes, made with the `phonemizer` package, "
            "which is not installed. Install it and espeak-ng (pip install phonemizer; apt install espeak-ng), or "
            "load the tokenizer with phonemize=False if your text is already phonemes."
        ) from None
    return phonemizer.phonemize(
        text, language="en-us", backend="espeak", strip=True, preserve_punctuation=True, with_stress=True
    )


__all__ = ["VitsTokenizer"]
