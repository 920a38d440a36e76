"""Special tokens of a tokenizer: the named ones (`pad_token`, `cls_token`, ...), extra ones, added tokens,
and the bos/eos template that `add_bos_token` / `add_eos_token` control. Mixed into PreTrainedTokenizerFast."""

from __future__ import annotations

from typing import Any

from tokenizers import AddedToken, processors

from .inputs import to_python

SPECIAL_TOKENS_ATTRIBUTES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")


def _as_added_token(value: Any, special: bool) -> AddedToken:
    if isinstance(value, AddedToken):
        return value
    if isinstance(value, dict):
        fields = {key: value[key] for key in ("content", "single_word", "lstrip", "rstrip", "normalized", "special")
                  if key in value}
        fields.setdefault("special", special)
        return AddedToken(**fields)
    return AddedToken(str(value), special=special)


def _added_token_state(token: AddedToken) -> dict:
    return {
        "content": token.content,
        "lstrip": token.lstrip,
        "normalized": token.normalized,
        "rstrip": token.rstrip,
        "single_word": token.single_word,
        "special": token.special,
    }


class _SpecialToken:
    """Descriptor for `<name>` (a str) and `<name>_id` (its id), as transformers exposes them."""

    def __init__(self, name: str, as_id: bool):
        self.name, self.as_id = name, as_id

    def __get__(self, tokenizer, owner=None):
        if tokenizer is None:
            return self
        value = tokenizer._special_tokens.get(self.name)
        if value is None:
            return None
        return tokenizer.convert_tokens_to_ids(str(value)) if self.as_id else str(value)

    def __set__(self, tokenizer, value):
        if value is not None and self.as_id:
            value = tokenizer.convert_ids_to_tokens(int(value))
        if value is not None and not isinstance(value, (str, AddedToken)):
            raise TypeError(f"{self.name} must be a str, an AddedToken or None, got {type(value).__name__}")
        tokenizer._special_tokens[self.name] = value


class SpecialTokensMixin:
    """Needs `self._backend` (a tokenizers.Tokenizer), `self._special_tokens` and `self._extra_special_tokens`."""

    SPECIAL_TOKENS_ATTRIBUTES = list(SPECIAL_TOKENS_ATTRIBUTES)

    for _name in SPECIAL_TOKENS_ATTRIBUTES:
        locals()[_name] = _SpecialToken(_name, as_id=False)
        locals()[f"{_name}_id"] = _SpecialToken(_name, as_id=True)
    del _name

    def _register_special_tokens(self, added_tokens_decoder: dict) -> None:
        """Make config-declared added tokens and every special token known to the engine (never split)."""
        present = {repr(token) for token in self._backend.get_added_tokens_decoder().values()}
        to_add = [
            _as_added_token(token, special=False)
            for _, token in sorted(added_tokens_decoder.items(), key=lambda item: int(item[0]))
        ]
        to_add = [token for token in to_add if repr(token) not in present]
        known = {token.content for token in self._backend.get_added_tokens_decoder().values()}
        known.update(token.content for token in to_add)
        named = {str(value) for value in self._special_tokens.values() if value is not None}
        for value in list(self._special_tokens.values()) + list(self._extra_special_tokens):
            if value is None or str(value) in known:
                continue
            token = _as_added_token(value, special=True)
            if not token.special and token.content in named:
                token.special = True
            to_add.append(token)
            known.add(token.content)
        if to_add:
            self._backend.add_tokens(to_add)

    @property
    def special_tokens_map(self) -> dict[str, str]:
        return {name: str(value) for name, value in self._special_tokens.items() if value is not None}

    @property
    def extra_special_tokens(self) -> list[str]:
        return [str(token) for token in self._extra_special_tokens]

    @extra_special_tokens.setter
    def extra_special_tokens(self, tokens: list) -> None:
        self._extra_special_tokens = list(tokens or [])

    additional_special_tokens = extra_special_tokens

    @property
    def extra_special_tokens_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.extra_special_tokens)

    additional_special_tokens_ids = extra_special_tokens_ids

    @property
    def all_special_tokens(self) -> list[str]:
        seen: dict[str, None] = {}
        for value in list(self._special_tokens.values()) + list(self._extra_special_tokens):
            if value is not None:
                seen.setdefault(str(value))
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def get_special_tokens_mask(
        self, token_ids_0: list[int], token_ids_1: list[int] | None = None, already_has_special_tokens: bool = False
    ) -> list[int]:
        if not already_has_special_tokens:
            raise NotImplementedError(
                "Pass already_has_special_tokens=True, or call the tokenizer with return_special_tokens_mask=True."
            )
        if token_ids_1 is not None:
            raise ValueError("token_ids_1 must be None when the ids already hold special tokens")
        special = set(self.all_special_ids)
        return [1 if int(index) in special else 0 for index in to_python(token_ids_0)]

    def add_tokens(self, new_tokens: str | AddedToken | list, special_tokens: bool = False) -> int:
        """Add tokens the engine will never split; returns how many were new to the vocabulary."""
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TypeError(f"tokens to add must be str or tokenizers.AddedToken, got {type(token).__name__}")
        if special_tokens:
            return self._backend.add_special_tokens(list(new_tokens))
        return self._backend.add_tokens(list(new_tokens))

    def add_special_tokens(self, special_tokens_dict: dict, replace_extra_special_tokens: bool = True) -> int:
        """Set named special tokens (pad_token, cls_token, ...) and/or extra_special_tokens, adding them to the vocab."""
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get("extra_special_tokens"):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        allowed = set(SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise ValueError(f"{key!r} is not a special token name; expected one of {sorted(allowed)}")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(isinstance(t, (str, AddedToken)) for t in value):
                    raise ValueError(f"extra_special_tokens must be a list of str or AddedToken, got {value!r}")
                current = self.extra_special_tokens
                new = [
                    AddedToken(t, normalized=False, special=True) if isinstance(t, str) else t
                    for t in value
                    if replace_extra_special_tokens or str(t) not in current
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"{key} must be a str or an AddedToken, got {type(value).__name__}")
                if isinstance(value, str):
                    value = AddedToken(value, normalized=False, special=True)
                self._special_tokens[key] = value
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)

    @property
    def add_bos_token(self) -> bool:
        return self._add_bos_token

    @add_bos_token.setter
    def add_bos_token(self, value: bool) -> None:
        self._add_bos_token = bool(value)
        self.update_post_processor()

    @property
    def add_eos_token(self) -> bool:
        return self._add_eos_token

    @add_eos_token.setter
    def add_eos_token(self, value: bool) -> None:
        self._add_eos_token = bool(value)
        self.update_post_processor()

    def update_post_processor(self) -> None:
        """Frame sequences with bos/eos according to add_bos_token / add_eos_token (transformers' base behaviour)."""
        bos, eos = self.bos_token, self.eos_token
        add_bos = self._add_bos_token and bos is not None
        add_eos = self._add_eos_token and eos is not None
        single = f"{bos + ':0 ' if add_bos else ''}$A:0{' ' + eos + ':0' if add_eos else ''}"
        pair = f"{single}{' ' + bos + ':1' if add_bos else ''} $B:1{' ' + eos + ':1' if add_eos else ''}"
        special = []
        if add_bos:
            special.append((bos, self.bos_token_id))
        if add_eos and eos != (bos if add_bos else None):
            special.append((eos, self.eos_token_id))
        self._backend.post_processor = processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)
