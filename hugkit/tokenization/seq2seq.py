"""Tokenizer classes of seq2seq models that do more than their engine: T5's sentinels, and the language codes of
mBART (cc25), mBART-50 and NLLB.

The language-code tokenizers frame sources with ``src_lang`` and targets with ``tgt_lang``, as transformers 5 does:

- mBART (cc25): ``tokens </s> src_lang`` (targets: ``tokens </s> tgt_lang``);
- mBART-50: ``src_lang tokens </s>`` (targets: ``tgt_lang tokens </s>``);
- NLLB: ``src_lang tokens </s>``, or with ``legacy_behaviour=True`` ``tokens </s> src_lang``.

``tokenizer.src_lang = "fr_XX"`` (or ``tgt_lang``) changes the framing; ``tokenizer(text, text_target=labels)``
frames the labels with ``tgt_lang`` (``src_lang`` when none is set, which then becomes ``tgt_lang``, as in
transformers). Beyond transformers: a call may pass ``src_lang=`` / ``tgt_lang=`` for that call only (transformers
silently ignores them), and setting a code that is neither one of ``language_codes`` nor an added token raises a
ValueError listing the valid codes (transformers silently frames with ``<unk>``; codes read from the files are
still taken as they are, with a logged warning). The id to force as the first generated token of a target
language is ``tokenizer.convert_tokens_to_ids(code)`` (also ``lang_code_to_id[code]`` for mBART and mBART-50);
``_build_translation_inputs`` returns it as ``forced_bos_token_id``, as transformers' does.
"""

from __future__ import annotations

import contextlib
import logging
import re

from tokenizers import AddedToken, processors

from .base import PreTrainedTokenizerFast
from .language_codes import MBART50_LANGUAGE_CODES, MBART_LANGUAGE_CODES, NLLB_LANGUAGE_CODES

logger = logging.getLogger(__name__)

_SENTINEL = re.compile(r"<extra_id_(\d+)>")


class T5Tokenizer(PreTrainedTokenizerFast):
    """T5: `A </s>` (pairs `A </s> B </s>`), with sentinel tokens ``<extra_id_0>`` .. at the end of the vocabulary."""

    def get_sentinel_tokens(self) -> list[str]:
        """The ``<extra_id_N>`` tokens, by N. (transformers returns all extra tokens, in set order.)"""
        found = [token for token in self.extra_special_tokens if _SENTINEL.fullmatch(token)]
        return sorted(found, key=lambda token: int(_SENTINEL.fullmatch(token).group(1)))

    def get_sentinel_token_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(token) for token in self.get_sentinel_tokens()]


class _LanguageCodeTokenizer(PreTrainedTokenizerFast):
    """Shared by mBART, mBART-50 and NLLB: sources framed with src_lang, targets with tgt_lang."""

    CLASS_LANGUAGE_CODES: tuple[str, ...] = ()
    DEFAULT_SRC_LANG = "en_XX"

    def __init__(self, tokenizer_object=None, *, src_lang: str | None = None, tgt_lang: str | None = None,
                 **kwargs):
        super().__init__(tokenizer_object, src_lang=src_lang, tgt_lang=tgt_lang, **kwargs)
        self.fairseq_offset = 1
        vocab = self.get_vocab()
        self.lang_code_to_id = {code: vocab.get(code, self.unk_token_id) for code in self.CLASS_LANGUAGE_CODES}
        # Codes from the files are taken as they are (transformers frames an unknown one with <unk>); codes set
        # later, or passed to from_pretrained, are checked.
        self._src_lang = src_lang if src_lang is not None else self.DEFAULT_SRC_LANG
        self._tgt_lang = tgt_lang
        for name, code in (("src_lang", self._src_lang), ("tgt_lang", tgt_lang)):
            if code is not None and code not in vocab:
                logger.warning("%s: %s %r is not in the vocabulary, so it is framed as %s (valid codes: %s)",
                               self.tokenizer_class, name, code, self.unk_token, ", ".join(self.language_codes) or
                               "none: the tokenizer files name no language codes")
        self.set_src_lang_special_tokens(self._src_lang)

    # ------------------------------------------------------------------ languages

    @property
    def language_codes(self) -> list[str]:
        """The language codes this tokenizer's vocabulary holds (its class's codes, then any other extra token
        spelled like one)."""
        vocab = self.get_vocab()
        codes = [code for code in self.CLASS_LANGUAGE_CODES if code in vocab]
        known = set(codes)
        codes += [token for token in self.extra_special_tokens if token not in known and self._looks_like_code(token)]
        return codes

    @staticmethod
    def _looks_like_code(token: str) -> bool:
        return bool(re.fullmatch(r"[a-z]{2,3}_[A-Za-z]{2,4}", token))

    def _check_code(self, code: str, name: str) -> str:
        if not isinstance(code, str):
            raise TypeError(f"{name} must be a language code (str), got {type(code).__name__} {code!r}")
        # A code is one of the language codes, or a token added to the vocabulary (a user's new language).
        if code not in self.language_codes and code not in self.added_tokens_encoder:
            codes = self.language_codes
            listed = ", ".join(codes) if codes else "none (the tokenizer files name no language codes)"
            raise ValueError(f"Unknown {name} {code!r} for this {self.tokenizer_class}. Valid codes: {listed}.")
        return code

    @property
    def src_lang(self) -> str:
        return self._src_lang

    @src_lang.setter
    def src_lang(self, code: str) -> None:
        self._src_lang = self._check_code(code, "src_lang")
        self.set_src_lang_special_tokens(code)

    @property
    def tgt_lang(self) -> str | None:
        return self._tgt_lang

    @tgt_lang.setter
    def tgt_lang(self, code: str | None) -> None:
        self._tgt_lang = None if code is None else self._check_code(code, "tgt_lang")

    # ------------------------------------------------------------------ framing

    def _framed(self, key) -> bool:
        """Whether the engine is already framed for `key` (the template is rebuilt at most once per change)."""
        if getattr(self, "_frame", None) == key:
            return True
        self._frame = key
        return False

    def _set_frame(self, code: str, prefix_code: bool) -> None:
        if self._framed((code, prefix_code, self.eos_token)):
            return
        code_id = self.convert_tokens_to_ids(code)
        eos_id = self.eos_token_id
        self.prefix_tokens = [code_id] if prefix_code else []
        self.suffix_tokens = [eos_id] if prefix_code else [eos_id, code_id]
        prefix = self.convert_ids_to_tokens(self.prefix_tokens)
        suffix = self.convert_ids_to_tokens(self.suffix_tokens)
        self._backend.post_processor = processors.TemplateProcessing(
            single=prefix + ["$A"] + suffix,
            pair=prefix + ["$A", "$B"] + suffix,
            special_tokens=list(zip(prefix + suffix, self.prefix_tokens + self.suffix_tokens)),
        )

    def set_src_lang_special_tokens(self, src_lang: str) -> None:
        raise NotImplementedError

    def set_tgt_lang_special_tokens(self, tgt_lang: str) -> None:
        raise NotImplementedError

    def _switch_to_input_mode(self) -> None:
        self.set_src_lang_special_tokens(self._src_lang)

    def _switch_to_target_mode(self) -> None:
        if self._tgt_lang is None:
            self._tgt_lang = self._src_lang  # transformers keeps this choice
        self.set_tgt_lang_special_tokens(self._tgt_lang)

    def update_post_processor(self) -> None:
        # The framing follows the languages, not add_bos_token / add_eos_token.
        if hasattr(self, "_src_lang"):
            self.set_src_lang_special_tokens(self._src_lang)

    def __call__(self, text=None, text_pair=None, *args, src_lang: str | None = None, tgt_lang: str | None = None,
                 **kwargs):
        """As PreTrainedTokenizerFast.__call__; ``src_lang=`` / ``tgt_lang=`` apply to this call only."""
        if src_lang is None and tgt_lang is None:
            return super().__call__(text, text_pair, *args, **kwargs)
        with self._languages(src_lang, tgt_lang):
            return super().__call__(text, text_pair, *args, **kwargs)

    @contextlib.contextmanager
    def _languages(self, src_lang, tgt_lang):
        saved = (self._src_lang, self._tgt_lang)
        if src_lang is not None:
            self._src_lang = self._check_code(src_lang, "src_lang")
        if tgt_lang is not None:
            self._tgt_lang = self._check_code(tgt_lang, "tgt_lang")
        try:
            yield
        finally:
            self._src_lang, self._tgt_lang = saved
            self.set_src_lang_special_tokens(self._src_lang)

    def _build_translation_inputs(self, raw_inputs, return_tensors: str | None, src_lang: str | None,
                                  tgt_lang: str | None, **extra_kwargs):
        """What transformers' translation pipeline feeds `generate`: the framed source and `forced_bos_token_id`."""
        if src_lang is None or tgt_lang is None:
            raise ValueError("Translation requires a `src_lang` and a `tgt_lang` for this model")
        self.src_lang = src_lang
        inputs = self(raw_inputs, add_special_tokens=True, return_tensors=return_tensors, **extra_kwargs)
        inputs["forced_bos_token_id"] = self.convert_tokens_to_ids(self._check_code(tgt_lang, "tgt_lang"))
        return inputs


def _fairseq_tokens_to_ids(tokenizer: _LanguageCodeTokenizer, with_codes: bool) -> dict[str, int]:
    table = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
    if with_codes:
        table.update(tokenizer.lang_code_to_id)
        table["<mask>"] = tokenizer.convert_tokens_to_ids(str(tokenizer.mask_token or "<mask>"))
    return table


class MBartTokenizer(_LanguageCodeTokenizer):
    """mBART (cc25): ``tokens </s> src_lang``; targets ``tokens </s> tgt_lang``."""

    CLASS_LANGUAGE_CODES = MBART_LANGUAGE_CODES

    def __init__(self, tokenizer_object=None, **kwargs):
        super().__init__(tokenizer_object, **kwargs)
        self.fairseq_tokens_to_ids = _fairseq_tokens_to_ids(self, with_codes=True)
        self.fairseq_ids_to_tokens = {index: token for token, index in self.fairseq_tokens_to_ids.items()}

    def set_src_lang_special_tokens(self, src_lang: str) -> None:
        self.cur_lang_code = self.convert_tokens_to_ids(src_lang)
        self._set_frame(src_lang, prefix_code=False)

    def set_tgt_lang_special_tokens(self, lang: str) -> None:
        self.cur_lang_code = self.convert_tokens_to_ids(lang)
        self._set_frame(lang, prefix_code=False)


class MBart50Tokenizer(_LanguageCodeTokenizer):
    """mBART-50: ``src_lang tokens </s>``; targets ``tgt_lang tokens </s>``."""

    CLASS_LANGUAGE_CODES = MBART50_LANGUAGE_CODES

    def __init__(self, tokenizer_object=None, extra_special_tokens=None, **kwargs):
        # The 50 codes always count as extra special tokens, after whatever the files list.
        extras = list(extra_special_tokens or [])
        present = {str(token) for token in extras}
        extras += [AddedToken(code, special=True) for code in self.CLASS_LANGUAGE_CODES if code not in present]
        super().__init__(tokenizer_object, extra_special_tokens=extras, **kwargs)
        self.id_to_lang_code = {index: code for code, index in self.lang_code_to_id.items()}
        self.fairseq_tokens_to_ids = _fairseq_tokens_to_ids(self, with_codes=True)
        self.fairseq_ids_to_tokens = {index: token for token, index in self.fairseq_tokens_to_ids.items()}

    def set_src_lang_special_tokens(self, src_lang: str) -> None:
        self.cur_lang_code_id = self.convert_tokens_to_ids(src_lang)
        self._set_frame(src_lang, prefix_code=True)

    def set_tgt_lang_special_tokens(self, tgt_lang: str) -> None:
        self.cur_lang_code_id = self.convert_tokens_to_ids(tgt_lang)
        self._set_frame(tgt_lang, prefix_code=True)


class NllbTokenizer(_LanguageCodeTokenizer):
    """NLLB: ``src_lang tokens </s>`` (``legacy_behaviour=True``: ``tokens </s> src_lang``); targets likewise."""

    CLASS_LANGUAGE_CODES = NLLB_LANGUAGE_CODES
    DEFAULT_SRC_LANG = "eng_Latn"

    def __init__(self, tokenizer_object=None, legacy_behaviour: bool = False, **kwargs):
        self.legacy_behaviour = bool(legacy_behaviour)
        super().__init__(tokenizer_object, legacy_behaviour=legacy_behaviour, **kwargs)
        del self.lang_code_to_id  # transformers 5's NllbTokenizer has none; use convert_tokens_to_ids(code)
        self.fairseq_tokens_to_ids = _fairseq_tokens_to_ids(self, with_codes=False)
        self.fairseq_ids_to_tokens = {index: token for token, index in self.fairseq_tokens_to_ids.items()}

    def _frame_code(self, code: str) -> None:
        # NLLB names the code token itself in the template (an unknown code stays spelled as given).
        if self._framed((code, self.legacy_behaviour, self.eos_token)):
            return
        self.cur_lang_code = self.convert_tokens_to_ids(code)
        eos, eos_id = self.eos_token, self.eos_token_id
        if self.legacy_behaviour:
            self.prefix_tokens, self.suffix_tokens = [], [eos_id, self.cur_lang_code]
            single, pair = ["$A", eos, code], ["$A", "$B", eos, code]
        else:
            self.prefix_tokens, self.suffix_tokens = [self.cur_lang_code], [eos_id]
            single, pair = [code, "$A", eos], [code, "$A", "$B", eos]
        self._backend.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(eos, eos_id), (code, self.cur_lang_code)]
        )

    def set_src_lang_special_tokens(self, src_lang: str) -> None:
        self._frame_code(src_lang)

    def set_tgt_lang_special_tokens(self, lang: str) -> None:
        self._frame_code(lang)

    @staticmethod
    def _looks_like_code(token: str) -> bool:
        return bool(re.fullmatch(r"[a-z]{3}_[A-Z][a-z]{3}", token))
