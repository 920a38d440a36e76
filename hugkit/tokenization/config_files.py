"""Find a checkpoint's tokenizer files and merge its configs into the settings a tokenizer is built from.

Precedence follows transformers: tokenizer_config.json, then caller overrides; special_tokens_map.json and
added_tokens.json are legacy and only read when the config has no `added_tokens_decoder`; class defaults fill
special tokens that nothing named.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from .families import TokenizerFamily

logger = logging.getLogger(__name__)

SENTENCEPIECE_FILE_NAMES = ("tokenizer.model", "spiece.model", "sentencepiece.bpe.model", "spm.model")
TOKENIZER_FILE_PATTERNS = [
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "config.json",
    "vocab.txt", "vocab.json", "merges.txt", "*.model", "chat_template.jinja", "chat_template.json",
    "*.spm", "target_vocab.json",  # Marian
]
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None


@dataclass
class TokenizerFiles:
    folder: Path
    tokenizer_json: Path | None = None
    vocab_txt: Path | None = None
    vocab_json: Path | None = None
    merges_txt: Path | None = None
    sentencepiece_models: dict[str, Path] = field(default_factory=dict)
    tokenizer_config: dict = field(default_factory=dict)
    special_tokens_map: dict | None = None
    added_tokens: dict | None = None
    model_config: dict = field(default_factory=dict)
    chat_template: str | dict | None = None

    @classmethod
    def read(cls, folder: Path) -> TokenizerFiles:
        def existing(name: str) -> Path | None:
            path = folder / name
            return path if path.is_file() else None

        files = cls(
            folder=folder,
            tokenizer_json=existing("tokenizer.json"),
            vocab_txt=existing("vocab.txt"),
            vocab_json=existing("vocab.json"),
            merges_txt=existing("merges.txt"),
            sentencepiece_models={name: folder / name for name in SENTENCEPIECE_FILE_NAMES if existing(name)},
        )
        for attribute, name in (("tokenizer_config", "tokenizer_config.json"), ("model_config", "config.json")):
            path = existing(name)
            if path is not None:
                value = _read_json(path)
                if not isinstance(value, dict):
                    raise ValueError(f"{path} must hold a JSON object, found {type(value).__name__}")
                setattr(files, attribute, value)
        for attribute, name in (("special_tokens_map", "special_tokens_map.json"), ("added_tokens", "added_tokens.json")):
            path = existing(name)
            if path is not None:
                setattr(files, attribute, _read_json(path))
        template = existing("chat_template.jinja")
        if template is not None:
            files.chat_template = template.read_text(encoding="utf-8")
        elif existing("chat_template.json") is not None:
            files.chat_template = _read_json(folder / "chat_template.json").get("chat_template")
        return files

    def sentencepiece_model(self, preferred: tuple[str, ...] = ()) -> Path | None:
        for name in (*preferred, *SENTENCEPIECE_FILE_NAMES):
            if name in self.sentencepiece_models:
                return self.sentencepiece_models[name]
        return None

    def path(self, name: str) -> Path | None:
        """folder/name when that file exists."""
        path = self.folder / name
        return path if path.is_file() else None

    def describe(self) -> str:
        names = sorted(path.name for path in self.folder.iterdir()) if self.folder.is_dir() else []
        return ", ".join(names) or "nothing"


def to_added_token(value: Any, special: bool | None = None) -> AddedToken | str | None:
    """Config values for tokens may be str or AddedToken dicts (with or without "__type")."""
    if isinstance(value, dict):
        fields = {key: value[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
                  if key in value}
        if "content" not in fields:
            raise ValueError(f"A token entry needs a 'content' field, got {value!r}")
        if special is not None:
            fields["special"] = special
        return AddedToken(**fields)
    if value is None or isinstance(value, (str, AddedToken)):
        return value
    raise TypeError(f"A special token must be a str or an AddedToken dict, got {type(value).__name__} {value!r}")


@dataclass
class MergedSettings:
    settings: dict  # everything the tokenizer is built from (special tokens as str/AddedToken)
    added_tokens_decoder: dict[int, AddedToken]
    explicit_bos_eos: bool  # add_bos_token/add_eos_token were asked for (not popped as tokenizer.json-owned)


def merge_settings(
    files: TokenizerFiles, family: TokenizerFamily, overrides: dict, uses_tokenizer_json: bool, derived: dict
) -> MergedSettings:
    settings = dict(files.tokenizer_config)
    for key in ("tokenizer_class", "auto_map", "init_inputs", "name_or_path"):
        settings.pop(key, None)
    if uses_tokenizer_json:
        # tokenizer.json's post-processor already says whether bos/eos are added.
        settings.pop("add_bos_token", None)
        settings.pop("add_eos_token", None)
    if files.chat_template is not None:
        settings["chat_template"] = files.chat_template
    settings.update(overrides)
    explicit_bos_eos = "add_bos_token" in settings or "add_eos_token" in settings

    if "additional_special_tokens" in settings:
        additional = settings.pop("additional_special_tokens")
        if not settings.get("extra_special_tokens"):
            settings["extra_special_tokens"] = additional

    added_tokens_decoder: dict[int, AddedToken] = {}
    if "added_tokens_decoder" in settings:
        for index, token in (settings.pop("added_tokens_decoder") or {}).items():
            added_tokens_decoder[int(index)] = to_added_token(token)
    else:
        _merge_legacy_files(files, settings, overrides, added_tokens_decoder)

    by_content = {token.content: token for token in added_tokens_decoder.values()}
    for name in SPECIAL_TOKEN_NAMES:
        if name in settings:
            value = to_added_token(settings[name])
            settings[name] = by_content.get(str(value), value) if value is not None else None
    for name, value in derived.get("special_tokens_defaults", {}).items():
        settings.setdefault(name, value)
    for name, value in family.special_tokens.items():
        settings.setdefault(name, value)
    for name, flags in derived.get("special_tokens", {}).items():
        if isinstance(settings.get(name), str):
            settings[name] = to_added_token(flags | {"content": settings[name]})
    if not settings.get("extra_special_tokens") and derived.get("extra_special_tokens"):
        settings["extra_special_tokens"] = [to_added_token(entry) for entry in derived["extra_special_tokens"]]
    elif settings.get("extra_special_tokens"):
        extras = settings["extra_special_tokens"]
        if isinstance(extras, dict):  # named extras ({"image_token": "<image>"}): keep the tokens
            extras = list(extras.values())
        settings["extra_special_tokens"] = [to_added_token(token, special=True) for token in extras]
    return MergedSettings(settings, added_tokens_decoder, explicit_bos_eos)


def _merge_legacy_files(files: TokenizerFiles, settings: dict, overrides: dict, added: dict) -> None:
    special_map = files.special_tokens_map or {}
    if not isinstance(special_map, dict):
        raise ValueError(f"special_tokens_map.json must hold a JSON object, found {type(special_map).__name__}")
    additional = None
    for key, value in special_map.items():
        if overrides.get(key):
            continue
        if key == "extra_special_tokens" and isinstance(value, list):
            existing = list(settings.get("extra_special_tokens") or [])
            for token in value:
                token = to_added_token(token, special=True) if isinstance(token, dict) else token
                if str(token) not in {str(item) for item in existing}:
                    existing.append(token)
            settings["extra_special_tokens"] = existing
        elif key == "additional_special_tokens":
            additional = value
        else:
            settings[key] = to_added_token(value, special=True) if isinstance(value, dict) else value

    if files.added_tokens:
        if not isinstance(files.added_tokens, dict):
            raise ValueError("added_tokens.json must map token strings to ids")
        # As in transformers: the legacy "additional_special_tokens" do not make these tokens special.
        special = {str(settings[name]) for name in SPECIAL_TOKEN_NAMES if settings.get(name)}
        special.update(str(token) for token in settings.get("extra_special_tokens") or [])
        for content, index in files.added_tokens.items():
            is_special = content in special
            added[int(index)] = AddedToken(content, normalized=not is_special, special=is_special)
    if additional and not settings.get("extra_special_tokens"):
        settings["extra_special_tokens"] = additional
