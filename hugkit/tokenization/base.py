"""PreTrainedTokenizerFast: transformers' tokenizer API over a `tokenizers.Tokenizer` (the Rust engine).

The call path is kept thin: inputs are type-checked per item, the engine's truncation is only reconfigured when
it changes, `encode_batch` does the work in Rust, and hugkit pads in numpy (see padding.py).
"""

from __future__ import annotations

import copy
import json
import logging
import os
from pathlib import Path

from tokenizers import AddedToken, Tokenizer

from .batch_encoding import BatchEncoding, to_tensor
from .inputs import prepare_batch, to_python
from .padding import VERY_LARGE_INTEGER, PadSpec, assemble, padded_length, resolve_strategies
from .special_tokens import SPECIAL_TOKENS_ATTRIBUTES, SpecialTokensMixin

logger = logging.getLogger(__name__)

_CALL_OPTIONS = {"verbose", "split_special_tokens", "tokenizer_kwargs", "max_target_length"}


def _single_types_all_zero(processor_state: dict | None) -> bool:
    """Whether a post-processor gives type id 0 to every token of a single (non-pair) sequence."""
    if processor_state is None:
        return True
    kind = processor_state.get("type")
    if kind == "TemplateProcessing":
        return all(next(iter(item.values())).get("type_id", 0) == 0 for item in processor_state.get("single", []))
    if kind in ("BertProcessing", "RobertaProcessing", "ByteLevel"):
        return True
    if kind == "Sequence":
        return all(_single_types_all_zero(item) for item in processor_state.get("processors", []))
    return False


class PreTrainedTokenizerFast(SpecialTokensMixin):
    """A tokenizer with transformers' API, backed by a `tokenizers.Tokenizer`.

    Build one with `AutoTokenizer.from_pretrained(...)`, or directly from an engine object or file:
    `PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="[PAD]")`.
    """

    model_input_names: list[str] = ["input_ids", "attention_mask"]
    padding_side: str = "right"
    truncation_side: str = "right"
    is_fast = True
    pad_token_type_id = 0

    def __init__(
        self,
        tokenizer_object: Tokenizer | None = None,
        *,
        tokenizer_file: str | os.PathLike | None = None,
        name_or_path: str = "",
        tokenizer_class: str | None = None,
        model_input_names: list[str] | None = None,
        model_max_length: int | None = None,
        padding_side: str | None = None,
        truncation_side: str | None = None,
        clean_up_tokenization_spaces: bool = False,
        split_special_tokens: bool = False,
        chat_template: str | dict | None = None,
        extra_special_tokens: list | None = None,
        additional_special_tokens: list | None = None,
        added_tokens_decoder: dict | None = None,
        add_bos_token: bool | None = None,
        add_eos_token: bool | None = None,
        **kwargs,
    ):
        if tokenizer_object is None and tokenizer_file is None:
            raise TypeError("PreTrainedTokenizerFast needs tokenizer_object= (a tokenizers.Tokenizer) or tokenizer_file=")
        if tokenizer_object is not None and not isinstance(tokenizer_object, Tokenizer):
            raise TypeError(f"tokenizer_object must be a tokenizers.Tokenizer, got {type(tokenizer_object).__name__}")
        backend = tokenizer_object if tokenizer_object is not None else Tokenizer.from_file(str(tokenizer_file))
        # Padding is hugkit's job and truncation is set per call: drop settings baked into a tokenizer.json.
        backend.no_padding()
        backend.no_truncation()
        self._backend = backend
        self.name_or_path = str(name_or_path)
        self.tokenizer_class = tokenizer_class or type(self).__name__

        special_tokens = {name: kwargs.pop(name, None) for name in SPECIAL_TOKENS_ATTRIBUTES}
        self._special_tokens: dict[str, str | AddedToken | None] = special_tokens
        extras = extra_special_tokens if extra_special_tokens is not None else additional_special_tokens
        self._extra_special_tokens: list[str | AddedToken] = list(extras or [])
        # Everything else from the config is kept verbatim so save_pretrained writes it back.
        self.init_kwargs = copy.deepcopy(kwargs)

        if model_input_names is not None:
            self.model_input_names = list(model_input_names)
        self.model_max_length = VERY_LARGE_INTEGER if model_max_length is None else int(model_max_length)
        self.padding_side = padding_side or type(self).padding_side
        self.truncation_side = truncation_side or type(self).truncation_side
        for side_name in ("padding_side", "truncation_side"):
            if getattr(self, side_name) not in ("left", "right"):
                raise ValueError(f"{side_name} must be 'left' or 'right', got {getattr(self, side_name)!r}")
        self.clean_up_tokenization_spaces = bool(clean_up_tokenization_spaces)
        self.split_special_tokens = bool(split_special_tokens)
        self.chat_template = chat_template
        self._add_bos_token = bool(add_bos_token)
        self._add_eos_token = bool(add_eos_token)
        self._type_id_check_cache: dict[bytes, bool] = {}

        self._register_special_tokens(added_tokens_decoder or {})
        # transformers builds a bos/eos template when the engine has no post-processor, or when asked explicitly.
        if backend.post_processor is None or add_bos_token is not None or add_eos_token is not None:
            self.update_post_processor()

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs) -> PreTrainedTokenizerFast:
        from .auto import AutoTokenizer

        return AutoTokenizer.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    # ------------------------------------------------------------------ engine and vocabulary

    @property
    def backend_tokenizer(self) -> Tokenizer:
        return self._backend

    @property
    def decoder(self):
        return self._backend.decoder

    @property
    def vocab_size(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=False)

    def __len__(self) -> int:
        return self._backend.get_vocab_size(with_added_tokens=True)

    def __bool__(self) -> bool:
        return True

    def get_vocab(self) -> dict[str, int]:
        return self._backend.get_vocab(with_added_tokens=True)

    @property
    def vocab(self) -> dict[str, int]:
        return self.get_vocab()

    @property
    def added_tokens_decoder(self) -> dict[int, AddedToken]:
        return self._backend.get_added_tokens_decoder()

    @property
    def added_tokens_encoder(self) -> dict[str, int]:
        return {token.content: index for index, token in sorted(self.added_tokens_decoder.items())}

    def get_added_vocab(self) -> dict[str, int]:
        return self.added_tokens_encoder

    def convert_tokens_to_ids(self, tokens: str | list[str]) -> int | list[int] | None:
        if isinstance(tokens, str):
            return self._token_to_id(tokens)
        if not isinstance(tokens, (list, tuple)):
            raise TypeError(f"tokens must be a str or a list of str, got {type(tokens).__name__}")
        return [self._token_to_id(token) for token in tokens]

    def _token_to_id(self, token: str) -> int | None:
        if not isinstance(token, str):
            raise TypeError(f"a token must be a str, got {type(token).__name__} {token!r}")
        index = self._backend.token_to_id(token)
        if index is None:
            unk = self._special_tokens.get("unk_token")
            return None if unk is None else self._backend.token_to_id(str(unk))
        return index

    def convert_ids_to_tokens(self, ids: int | list[int], skip_special_tokens: bool = False) -> str | list[str]:
        ids = to_python(ids)
        if isinstance(ids, int):
            return self._backend.id_to_token(ids)
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"ids must be an int or a list of int, got {type(ids).__name__}")
        skip = set(self.all_special_ids) if skip_special_tokens else ()
        return [self._backend.id_to_token(int(index)) for index in ids if int(index) not in skip]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        decoder = self._backend.decoder
        return decoder.decode(tokens) if decoder is not None else " ".join(tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        return self._backend.num_special_tokens_to_add(pair)

    @property
    def max_len_single_sentence(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=False)

    @property
    def max_len_sentences_pair(self) -> int:
        return self.model_max_length - self.num_special_tokens_to_add(pair=True)

    # ------------------------------------------------------------------ encoding

    def __call__(
        self,
        text=None,
        text_pair=None,
        *,
        text_target=None,
        text_pair_target=None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        is_split_into_words: bool = False,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        return_token_type_ids: bool | None = None,
        return_attention_mask: bool | None = None,
        return_overflowing_tokens: bool = False,
        return_special_tokens_mask: bool = False,
        return_offsets_mapping: bool = False,
        return_length: bool = False,
        **kwargs,
    ) -> BatchEncoding:
        """Tokenize a string, a pair, a batch or a batch of pairs; same arguments and outputs as transformers."""
        unknown = set(kwargs) - _CALL_OPTIONS
        if unknown:
            raise TypeError(f"Unexpected keyword argument(s) {sorted(unknown)} for a tokenizer call")
        options = dict(
            add_special_tokens=add_special_tokens, padding=padding, truncation=truncation, max_length=max_length,
            stride=stride, is_split_into_words=is_split_into_words, pad_to_multiple_of=pad_to_multiple_of,
            padding_side=padding_side, return_tensors=return_tensors, return_token_type_ids=return_token_type_ids,
            return_attention_mask=return_attention_mask, return_overflowing_tokens=return_overflowing_tokens,
            return_special_tokens_mask=return_special_tokens_mask, return_offsets_mapping=return_offsets_mapping,
            return_length=return_length, split_special_tokens=kwargs.get("split_special_tokens"),
        )
        options.update((kwargs.get("tokenizer_kwargs") or {}))
        if text is None and text_target is None:
            raise TypeError("text must be a str, a list of str, or a list of pairs; got None")
        encoded = None
        if text is not None:
            self._switch_to_input_mode()
            encoded = self._encode(text, text_pair, **options)
        if text_target is None:
            return encoded
        # Targets (labels) are tokenized in target mode: a seq2seq tokenizer's target language or model.
        max_target_length = kwargs.get("max_target_length")
        if max_target_length is not None:
            # As transformers: the strategies are the call's; only the length changes for the targets.
            strategies = resolve_strategies(options["padding"], options["truncation"], options["max_length"],
                                            options["pad_to_multiple_of"], self.model_max_length)
            options.update(max_length=max_target_length, truncation=strategies.truncation)
        self._switch_to_target_mode()
        try:
            targets = self._encode(text_target, text_pair_target, **options)
        finally:
            self._switch_to_input_mode()
        if encoded is None:
            return targets
        encoded["labels"] = targets["input_ids"]
        return encoded

    def _switch_to_input_mode(self) -> None:
        """Seq2seq tokenizers (mBART, NLLB, Marian, ...) frame sources and targets differently; others do nothing."""

    def _switch_to_target_mode(self) -> None:
        """See `_switch_to_input_mode`."""

    def _encode(
        self,
        text,
        text_pair,
        add_special_tokens=True,
        padding=False,
        truncation=None,
        max_length=None,
        stride=0,
        is_split_into_words=False,
        pad_to_multiple_of=None,
        padding_side=None,
        return_tensors=None,
        return_token_type_ids=None,
        return_attention_mask=None,
        return_overflowing_tokens=False,
        return_special_tokens_mask=False,
        return_offsets_mapping=False,
        return_length=False,
        split_special_tokens=None,
    ) -> BatchEncoding:
        return_tensors = getattr(return_tensors, "value", return_tensors)
        if return_tensors not in (None, "pt", "np"):
            raise ValueError(f"return_tensors must be None, 'pt' or 'np', got {return_tensors!r}")
        padding_side = padding_side or self.padding_side
        if padding_side not in ("left", "right"):
            raise ValueError(f"padding_side must be 'left' or 'right', got {padding_side!r}")
        strategies = resolve_strategies(padding, truncation, max_length, pad_to_multiple_of, self.model_max_length)
        if strategies.padding != "do_not_pad":
            self._check_pad_token()

        batch, is_batched, has_pairs = prepare_batch(text, text_pair, is_split_into_words)
        encodings = self._run_engine(
            batch, add_special_tokens, strategies, stride, is_split_into_words, split_special_tokens
        )
        sample_mapping = None
        if return_overflowing_tokens:
            flat, sample_mapping = [], []
            for index, encoding in enumerate(encodings):
                rows = [encoding, *encoding.overflowing]
                flat.extend(rows)
                sample_mapping.extend([index] * len(rows))
            encodings = flat

        if return_token_type_ids is None:
            return_token_type_ids = "token_type_ids" in self.model_input_names
        if return_attention_mask is None:
            return_attention_mask = "attention_mask" in self.model_input_names
        fields = ["input_ids"]
        if return_token_type_ids:
            fields.append("token_type_ids")
        if return_attention_mask:
            fields.append("attention_mask")
        if return_special_tokens_mask:
            fields.append("special_tokens_mask")
        if return_offsets_mapping:
            fields.append("offset_mapping")
        if return_length:
            fields.append("length")

        rows_ids = self._rows_ids(encodings)
        target = padded_length([len(row) for row in rows_ids], strategies.padding, strategies.max_length,
                               pad_to_multiple_of)
        spec = PadSpec(target, padding_side, self.pad_token_id if target is not None else 0, self.pad_token_type_id)
        zero_types = return_token_type_ids and not has_pairs and (
            not add_special_tokens or self._single_types_all_zero()
        )
        data = assemble(encodings, rows_ids, fields, spec, as_arrays=return_tensors is not None,
                        zero_type_ids=zero_types)
        if sample_mapping is not None:
            data["overflow_to_sample_mapping"] = sample_mapping if return_tensors is None else to_tensor(
                sample_mapping, "np"
            )
        if return_tensors == "pt":
            data = {key: to_tensor(value, "pt") for key, value in data.items()}

        pending = None
        if target is not None:
            pending = {"length": target, "direction": padding_side, "pad_id": spec.pad_id,
                       "pad_type_id": spec.pad_type_id, "pad_token": self.pad_token}
        if not is_batched and return_tensors is None and not return_overflowing_tokens:
            data = {key: value[0] if value and isinstance(value[0], list) else value for key, value in data.items()}
        return BatchEncoding(data, encodings=encodings, pending_padding=pending)

    def _rows_ids(self, encodings) -> list[list[int]]:
        return [encoding.ids for encoding in encodings]

    def _run_engine(self, batch, add_special_tokens, strategies, stride, is_split_into_words, split_special_tokens):
        backend = self._backend
        current = backend.truncation
        if strategies.truncation == "do_not_truncate":
            if current is not None:
                backend.no_truncation()
        else:
            target = {
                "max_length": strategies.max_length,
                "stride": stride,
                "strategy": strategies.truncation,
                "direction": self.truncation_side,
            }
            if current is None or any(current.get(key) != value for key, value in target.items()):
                try:
                    backend.enable_truncation(**target)
                except Exception as error:  # the engine raises a bare Exception for bad settings
                    raise ValueError(f"Invalid truncation settings {target}: {error}") from None
        if backend.padding is not None:
            backend.no_padding()
        split = self.split_special_tokens if split_special_tokens is None else bool(split_special_tokens)
        if backend.encode_special_tokens != split:
            backend.encode_special_tokens = split
        try:
            return backend.encode_batch(batch, is_pretokenized=is_split_into_words,
                                        add_special_tokens=add_special_tokens)
        except TypeError:
            raise
        except BaseException as error:
            # The engine reports bad settings (e.g. a stride too large for max_length) as an Exception or,
            # for some, a Rust panic (a BaseException subclass); both become a ValueError here.
            if not isinstance(error, Exception) and type(error).__name__ != "PanicException":
                raise
            raise ValueError(f"The tokenizer engine could not encode the input: {error}") from None

    def _single_types_all_zero(self) -> bool:
        processor = self._backend.post_processor
        if processor is None:
            return True
        state = processor.__getstate__()
        cached = self._type_id_check_cache.get(state)
        if cached is None:
            cached = _single_types_all_zero(json.loads(state))
            self._type_id_check_cache[state] = cached
        return cached

    def _check_pad_token(self) -> None:
        if self.pad_token is None or self.pad_token_id is None or self.pad_token_id < 0:
            raise ValueError(
                "Asking to pad but the tokenizer has no padding token. Set one, e.g. "
                "`tokenizer.pad_token = tokenizer.eos_token`, or add one with "
                "`tokenizer.add_special_tokens({'pad_token': '[PAD]'})`."
            )

    def encode(
        self,
        text,
        text_pair=None,
        add_special_tokens: bool = True,
        padding: bool | str = False,
        truncation: bool | str | None = None,
        max_length: int | None = None,
        stride: int = 0,
        padding_side: str | None = None,
        return_tensors: str | None = None,
        **kwargs,
    ):
        """Token ids of `text` (and `text_pair`): a list of ints, or a tensor with return_tensors."""
        return self(
            text, text_pair, add_special_tokens=add_special_tokens, padding=padding, truncation=truncation,
            max_length=max_length, stride=stride, padding_side=padding_side, return_tensors=return_tensors, **kwargs,
        )["input_ids"]

    def tokenize(self, text: str, pair: str | None = None, add_special_tokens: bool = False, **kwargs) -> list[str]:
        if not isinstance(text, str):
            raise TypeError(f"tokenize() takes a str, got {type(text).__name__}")
        return self(text, pair, add_special_tokens=add_special_tokens, **kwargs).encodings[0].tokens

    # ------------------------------------------------------------------ padding already-encoded inputs

    def pad(
        self,
        encoded_inputs,
        padding: bool | str = True,
        max_length: int | None = None,
        pad_to_multiple_of: int | None = None,
        padding_side: str | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | None = None,
        verbose: bool = True,
    ) -> BatchEncoding:
        """Pad encoded inputs (a dict of lists, a BatchEncoding, or a list of dicts) like transformers' `pad`."""
        from .pad_inputs import pad_encoded_inputs

        return pad_encoded_inputs(
            self, encoded_inputs, padding, max_length, pad_to_multiple_of, padding_side, return_attention_mask,
            return_tensors,
        )

    # ------------------------------------------------------------------ decoding

    def decode(self, token_ids, skip_special_tokens: bool = False, clean_up_tokenization_spaces: bool | None = None,
               **kwargs) -> str | list[str]:
        """Text of one sequence of ids (or a list of texts for a batch of sequences)."""
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        token_ids = to_python(token_ids)
        if isinstance(token_ids, int) and not isinstance(token_ids, bool):
            token_ids = [token_ids]
        if not isinstance(token_ids, (list, tuple)):
            raise TypeError(f"token_ids must be an int, a list of ints or a batch of lists, got "
                            f"{type(token_ids).__name__}")
        if token_ids and isinstance(token_ids[0], (list, tuple)):
            return self.batch_decode(token_ids, skip_special_tokens, clean_up_tokenization_spaces)
        try:
            text = self._backend.decode(list(token_ids), skip_special_tokens=skip_special_tokens)
        except (TypeError, OverflowError) as error:
            raise TypeError(f"token_ids must be non-negative ints: {error}") from None
        return self._clean_up(text, clean_up_tokenization_spaces)

    def batch_decode(self, sequences, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None, **kwargs) -> list[str]:
        sequences = to_python(sequences)
        if not isinstance(sequences, (list, tuple)):
            raise TypeError(f"sequences must be a list of lists of ints, got {type(sequences).__name__}")
        if not sequences:
            return []
        if not isinstance(sequences[0], (list, tuple)):
            return [self.decode(sequences, skip_special_tokens, clean_up_tokenization_spaces)]
        try:
            texts = self._backend.decode_batch([list(seq) for seq in sequences],
                                               skip_special_tokens=skip_special_tokens)
        except (TypeError, OverflowError) as error:
            raise TypeError(f"sequences must hold non-negative ints: {error}") from None
        return [self._clean_up(text, clean_up_tokenization_spaces) for text in texts]

    def _clean_up(self, text: str, clean_up_tokenization_spaces: bool | None) -> str:
        clean = self.clean_up_tokenization_spaces if clean_up_tokenization_spaces is None else clean_up_tokenization_spaces
        # Like transformers 5: the clean-up was designed for WordPiece and would damage byte-level BPE output.
        if clean and type(self._backend.model).__name__ != "BPE":
            text = self.clean_up_tokenization(text)
        return text

    @staticmethod
    def clean_up_tokenization(text: str) -> str:
        return (
            text.replace(" .", ".").replace(" ?", "?").replace(" !", "!").replace(" ,", ",")
            .replace(" ' ", "'").replace(" n't", "n't").replace(" 'm", "'m").replace(" 's", "'s")
            .replace(" 've", "'ve").replace(" 're", "'re")
        )

    # ------------------------------------------------------------------ chat templates

    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt: bool = False, continue_final_message: bool | str = False,
                            tokenize: bool = True, padding: bool | str = False, truncation: bool = False,
                            max_length: int | None = None, return_tensors: str | None = None,
                            return_dict: bool = True, tokenizer_kwargs: dict | None = None, **kwargs):
        """Render a conversation (or a batch of them) with the chat template, like transformers 5.

        Returns the text when ``tokenize=False``; else a BatchEncoding (``return_dict=True``, transformers 5's
        default) or the token ids. Extra keyword arguments are variables for the template.
        """
        from .chat_template import apply_chat_template

        return apply_chat_template(
            self, conversation, tools=tools, documents=documents, chat_template=chat_template,
            add_generation_prompt=add_generation_prompt, continue_final_message=continue_final_message,
            tokenize=tokenize, padding=padding, truncation=truncation, max_length=max_length,
            return_tensors=return_tensors, return_dict=return_dict, tokenizer_kwargs=tokenizer_kwargs, **kwargs,
        )

    def get_chat_template(self, chat_template: str | None = None, tools: list | None = None) -> str:
        """The template text ``apply_chat_template`` would use (by name when the tokenizer has several)."""
        from .chat_template import select_template

        return select_template(self.chat_template, chat_template, tools)

    # ------------------------------------------------------------------ saving

    def save_pretrained(self, save_directory: str | os.PathLike, legacy_format: bool | None = None,
                        filename_prefix: str | None = None, push_to_hub: bool = False, **kwargs) -> tuple[str, ...]:
        """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json (readable by transformers too)."""
        from .saving import save_tokenizer

        if push_to_hub:
            raise NotImplementedError("hugkit saves locally only; upload the folder with huggingface_hub.")
        return save_tokenizer(self, Path(save_directory), filename_prefix)

    def __repr__(self) -> str:
        return (
            f"{self.tokenizer_class}(name_or_path={self.name_or_path!r}, vocab_size={self.vocab_size}, "
            f"model_max_length={self.model_max_length}, padding_side={self.padding_side!r}, "
            f"truncation_side={self.truncation_side!r}, special_tokens={self.special_tokens_map})"
        )
