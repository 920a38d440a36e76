"""Whisper's tokenizer extras on top of hugkit's tokenizer: timestamp tokens, offsets, prompts, and the merging of
chunked transcriptions that transformers' ASR pipeline does in ``WhisperTokenizer._decode_asr``.

``WhisperTokenizer`` is hugkit's ``PreTrainedTokenizerFast`` for a Whisper folder's ``tokenizer.json`` with
transformers' Whisper-only methods and arguments:

- ``decode(ids, output_offsets=True)`` -> ``{"text", "offsets": [{"text", "timestamp": (start, end)}, ...]}``,
  ``decode(ids, decode_with_timestamps=True)`` -> ``"<|0.00|> Hello<|0.74|>"``, ``time_precision=``;
  timestamp tokens (``<|0.00|>`` .. ``<|30.00|>``, the ids after the last special token) are dropped from plain
  text as transformers drops them;
- ``timestamp_ids()``, ``prefix_tokens`` / ``set_prefix_tokens(language=, task=, predict_timestamps=)``,
  ``get_decoder_prompt_ids(task=, language=, no_timestamps=)``, ``get_prompt_ids(text)``;
- ``decode_asr(model_outputs, return_timestamps=, return_language=, time_precision=)``: per-chunk generated
  tokens (with their ``stride`` in seconds) to ``(text, {"chunks": [...]})`` exactly as transformers' pipeline
  builds its output: overlapping chunks merged on their longest common token run, timestamps offset by each
  chunk's position, segments (``return_timestamps=True``) or words (``"word"``, from per-token times).

Where it differs from transformers, on purpose: ``normalize=True`` (Whisper's English spelling normalizer) is not
implemented and says so; ``basic_normalize`` is.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from typing import Any, Iterable, Sequence

from ..tokenization.base import PreTrainedTokenizerFast
from ..tokenization.inputs import to_python

logger = logging.getLogger(__name__)

# Whisper's languages in token order (``<|en|>`` is ``<|startoftranscript|>`` + 1, and so on), code:name.
_LANGUAGE_TABLE = (
    "en:english zh:chinese de:german es:spanish ru:russian ko:korean fr:french ja:japanese pt:portuguese "
    "tr:turkish pl:polish ca:catalan nl:dutch ar:arabic sv:swedish it:italian id:indonesian hi:hindi fi:finnish "
    "vi:vietnamese he:hebrew uk:ukrainian el:greek ms:malay cs:czech ro:romanian da:danish hu:hungarian ta:tamil "
    "no:norwegian th:thai ur:urdu hr:croatian bg:bulgarian lt:lithuanian la:latin mi:maori ml:malayalam cy:welsh "
    "sk:slovak te:telugu fa:persian lv:latvian bn:bengali sr:serbian az:azerbaijani sl:slovenian kn:kannada "
    "et:estonian mk:macedonian br:breton eu:basque is:icelandic hy:armenian ne:nepali mn:mongolian bs:bosnian "
    "kk:kazakh sq:albanian sw:swahili gl:galician mr:marathi pa:punjabi si:sinhala km:khmer sn:shona yo:yoruba "
    "so:somali af:afrikaans oc:occitan ka:georgian be:belarusian tg:tajik sd:sindhi gu:gujarati am:amharic "
    "yi:yiddish lo:lao uz:uzbek fo:faroese ht:haitian_creole ps:pashto tk:turkmen nn:nynorsk mt:maltese "
    "sa:sanskrit lb:luxembourgish my:myanmar bo:tibetan tl:tagalog mg:malagasy as:assamese tt:tatar haw:hawaiian "
    "ln:lingala ha:hausa ba:bashkir jw:javanese su:sundanese yue:cantonese"
)
LANGUAGES: dict[str, str] = {
    code: name.replace("_", " ") for code, name in (pair.split(":") for pair in _LANGUAGE_TABLE.split())
}
_LANGUAGE_ALIASES = {
    "burmese": "my", "valencian": "ca", "flemish": "nl", "haitian": "ht", "letzeburgesch": "lb", "pushto": "ps",
    "panjabi": "pa", "moldavian": "ro", "moldovan": "ro", "sinhalese": "si", "castilian": "es", "mandarin": "zh",
}
TO_LANGUAGE_CODE: dict[str, str] = {**{name: code for code, name in LANGUAGES.items()}, **_LANGUAGE_ALIASES}
TASK_IDS = ["translate", "transcribe"]

# Languages written without spaces: words are split where the tokens decode to whole characters.
_NO_SPACE_LANGUAGES = {"chinese", "japanese", "thai", "lao", "myanmar", "cantonese"}
_PREPEND_PUNCTUATION = "\"'“¡¿([{-"
_APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"
_ASCII_PUNCTUATION = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
_TIMESTAMP_TEXT = re.compile(r"<\|(\d+\.\d+)\|>")


def language_code(language: str) -> str:
    """``"english"`` / ``"en"`` / ``"<|en|>"`` -> ``"en"``; a clear error for anything else."""
    text = str(language).strip().lower()
    if text.startswith("<|") and text.endswith("|>"):
        text = text[2:-2]
    if text in TO_LANGUAGE_CODE:
        return TO_LANGUAGE_CODE[text]
    if text in LANGUAGES:
        return text
    listing = sorted(LANGUAGES) if len(text) <= 3 else sorted(TO_LANGUAGE_CODE)
    raise ValueError(f"Unsupported language {language!r}. Whisper knows these: {', '.join(listing)}.")


# --------------------------------------------------------------------------------------------------
# the tokenizer
# --------------------------------------------------------------------------------------------------
class WhisperTokenizer(PreTrainedTokenizerFast):
    """hugkit's fast tokenizer with transformers' ``WhisperTokenizer`` methods (see the module docstring)."""

    model_input_names = ["input_ids", "attention_mask"]

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: Any, *args: Any, language: str | None = None, task: str | None = None,
        predict_timestamps: bool = False, **kwargs: Any,
    ) -> "WhisperTokenizer":
        from ..tokenization import AutoTokenizer

        base = AutoTokenizer.from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        return cls.from_tokenizer(base, language=language, task=task, predict_timestamps=predict_timestamps)

    @classmethod
    def from_tokenizer(
        cls, tokenizer: PreTrainedTokenizerFast, *, language: str | None = None, task: str | None = None,
        predict_timestamps: bool | None = None,
    ) -> "WhisperTokenizer":
        """A WhisperTokenizer over an already loaded hugkit tokenizer (sharing its engine)."""
        if isinstance(tokenizer, cls) and language is None and task is None and predict_timestamps is None:
            return tokenizer
        if not isinstance(tokenizer, PreTrainedTokenizerFast):
            raise TypeError(
                f"WhisperTokenizer wraps a hugkit tokenizer (hugkit.AutoTokenizer.from_pretrained(folder)), found "
                f"{type(tokenizer).__name__}."
            )
        for token in ("<|startoftranscript|>", "<|notimestamps|>", "<|endoftext|>"):
            if tokenizer.convert_tokens_to_ids(token) in (None, tokenizer.unk_token_id) and token != "<|endoftext|>":
                raise ValueError(
                    f"{tokenizer.name_or_path or 'This tokenizer'} has no {token} token: it is not a Whisper "
                    "tokenizer. Load the tokenizer.json of a Whisper checkpoint."
                )
        whisper = cls.__new__(cls)
        whisper.__dict__.update(tokenizer.__dict__)
        whisper.language = getattr(tokenizer, "language", None)
        whisper.task = getattr(tokenizer, "task", None)
        whisper.predict_timestamps = bool(getattr(tokenizer, "predict_timestamps", False))
        whisper._timestamp_begin = None
        if language is not None or task is not None or predict_timestamps is not None:
            whisper.set_prefix_tokens(language=language, task=task, predict_timestamps=predict_timestamps)
        return whisper

    # --- ids ---------------------------------------------------------------------------------------
    @property
    def timestamp_begin(self) -> int:
        """The id of ``<|0.00|>``: the first id after the special tokens (transformers' rule)."""
        if self._timestamp_begin is None:
            self._timestamp_begin = self.all_special_ids[-1] + 1
        return self._timestamp_begin

    def timestamp_ids(self, time_precision: float = 0.02) -> list[int]:
        """The ids of ``<|0.00|>``, ``<|0.02|>``, ... ``<|30.00|>`` (1,501 tokens at 0.02 s)."""
        return self.convert_tokens_to_ids([f"<|{i * time_precision:.2f}|>" for i in range(1500 + 1)])

    def _id(self, token: str) -> int:
        return self.convert_tokens_to_ids(token)

    # --- decoding ----------------------------------------------------------------------------------
    def decode(
        self,
        token_ids: Any,
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        output_offsets: bool = False,
        time_precision: float = 0.02,
        decode_with_timestamps: bool = False,
        normalize: bool = False,
        basic_normalize: bool = False,
        remove_diacritics: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Text of ``token_ids`` (timestamp tokens dropped), or with them written in (``decode_with_timestamps``), or
        ``{"text", "offsets"}`` (``output_offsets``). A batch (list of sequences) gives a list."""
        if isinstance(token_ids, dict):
            token_ids = token_ids["input_ids"]
        ids = to_python(token_ids)
        if isinstance(ids, int) and not isinstance(ids, bool):
            ids = [ids]
        if isinstance(ids, (list, tuple)) and ids and isinstance(ids[0], (list, tuple)):
            return [
                self.decode(row, skip_special_tokens, clean_up_tokenization_spaces, output_offsets, time_precision,
                            decode_with_timestamps, normalize, basic_normalize, remove_diacritics, **kwargs)
                for row in ids
            ]
        if not isinstance(ids, (list, tuple)):
            raise TypeError(f"token_ids must be an int, a list of ints or a batch of lists, found {type(ids).__name__}.")
        ids = list(ids)
        if normalize:
            raise NotImplementedError(
                "normalize=True (Whisper's EnglishTextNormalizer) is not implemented in hugkit. Use "
                "basic_normalize=True, or decode and normalize the text yourself."
            )
        kept = self.strip_prompt(ids) if skip_special_tokens else ids
        if decode_with_timestamps:  # as in transformers, the timestamped text is not normalized
            text = self._decode_with_timestamps(kept, skip_special_tokens, time_precision, clean_up_tokenization_spaces)
        else:
            text = self._plain_decode(kept, skip_special_tokens, clean_up_tokenization_spaces)
            if basic_normalize:
                text = self.basic_normalize(text, remove_diacritics=remove_diacritics)
            text = _TIMESTAMP_TEXT.sub("", text)
        if output_offsets:
            return {"text": text, "offsets": self.compute_offsets(ids, time_precision=time_precision)}
        return text

    def batch_decode(self, sequences: Any, skip_special_tokens: bool = False,
                     clean_up_tokenization_spaces: bool | None = None, **kwargs: Any) -> list[Any]:
        rows = to_python(sequences)
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"sequences must be a list of lists of ints, found {type(rows).__name__}.")
        if rows and not isinstance(rows[0], (list, tuple)):
            rows = [rows]
        return [self.decode(row, skip_special_tokens, clean_up_tokenization_spaces, **kwargs) for row in rows]

    def _plain_decode(self, ids: list[int], skip_special_tokens: bool = False,
                      clean_up_tokenization_spaces: bool | None = None) -> str:
        return PreTrainedTokenizerFast.decode(self, ids, skip_special_tokens, clean_up_tokenization_spaces)

    def _decode_with_timestamps(self, ids: list[int], skip_special_tokens: bool, time_precision: float,
                                clean_up_tokenization_spaces: bool | None = None, segment_size: int = 1500) -> str:
        """Text with each timestamp token written as ``<|1.08|>``; times keep growing across the 30-s windows of a
        long-form output (a timestamp smaller than the last one starts a new window)."""
        begin = self.timestamp_begin
        pieces: list[Any] = [[]]
        window_offset = 0.0
        latest = 0.0  # the largest timestamp of the current window
        before_latest = 0.0
        for i, token in enumerate(ids):
            if token < begin:
                pieces[-1].append(token)
                continue
            time = (token - begin) * time_precision
            if time < latest:  # a new window started
                single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                if single_ending:
                    window_offset += time_precision * segment_size
                else:
                    latest = before_latest
                    window_offset += before_latest
                    pieces = pieces[:-2]
            before_latest, latest = latest, time
            pieces.append(f"<|{time + window_offset:.2f}|>")
            pieces.append([])
        return "".join(
            piece if isinstance(piece, str)
            else self._plain_decode(piece, skip_special_tokens, clean_up_tokenization_spaces) if piece else ""
            for piece in pieces
        )

    def compute_offsets(self, token_ids: Any, time_precision: float = 0.02, segment_size: int = 1500) -> list[dict]:
        """``[{"text", "timestamp": (start, end)}, ...]``: one entry per timestamped segment of ``token_ids``."""
        ids = to_python(token_ids)
        if isinstance(ids, list) and ids and isinstance(ids[0], list):
            if len(ids) > 1:
                raise ValueError(f"compute_offsets takes one sequence at a time, found a batch of {len(ids)}.")
            ids = ids[0]
        ids = [ids] if isinstance(ids, int) else list(ids)
        begin = self.timestamp_begin
        stamped = [i for i, token in enumerate(ids) if token >= begin]
        # Segment boundaries: the second of each pair of adjacent timestamp tokens, and the end of the last one.
        cuts = [i for i in range(1, len(ids)) if ids[i] >= begin and ids[i - 1] >= begin]
        if not cuts and len(stamped) <= 1:
            return []
        if stamped[-1] + 1 not in cuts:
            cuts.append(stamped[-1] + 1)
        offsets = []
        start_index = stamped[0]
        latest = 0
        window_offset = 0
        for cut in cuts:
            piece = ids[start_index:cut]
            if len(piece) > 1:
                start_position = piece[0] - begin
                end_position = piece[-1] - begin
                if start_position < latest:  # the next 30-s window started
                    single_ending = start_index >= 2 and not (ids[start_index - 2] >= begin and ids[start_index - 1] >= begin)
                    window_offset += segment_size if single_ending else latest
                latest = end_position
                text = _TIMESTAMP_TEXT.sub("", self._plain_decode(piece))
                offsets.append({
                    "text": text,
                    "timestamp": (start_position * time_precision + window_offset * time_precision,
                                  end_position * time_precision + window_offset * time_precision),
                })
            start_index = cut
        return offsets

    # transformers' private name, which some callers use
    _compute_offsets = compute_offsets

    def strip_prompt(self, ids: list[int]) -> list[int]:
        """Drop a ``<|startofprev|> ...`` prompt: what precedes ``<|startoftranscript|>`` (everything if absent)."""
        ids = list(to_python(ids))
        if not ids or ids[0] != self._id("<|startofprev|>"):
            return ids
        start = self._id("<|startoftranscript|>")
        return ids[ids.index(start):] if start in ids else []

    @staticmethod
    def basic_normalize(text: str, remove_diacritics: bool = False) -> str:
        """Whisper's BasicTextNormalizer: lowercase, bracketed asides dropped, symbols and punctuation to spaces."""
        text = text.lower()
        text = re.sub(r"[<\[][^>\]]*[>\]]", "", text)  # <...> and [...]
        text = re.sub(r"\(([^)]+?)\)", "", text)  # (...)
        if remove_diacritics:
            text = "".join(
                _DIACRITICS.get(char, "") if unicodedata.category(char) == "Mn" or char in _DIACRITICS
                else " " if unicodedata.category(char)[0] in "MSP" else char
                for char in unicodedata.normalize("NFKD", text)
            )
        else:
            text = "".join(" " if unicodedata.category(char)[0] in "MSP" else char
                           for char in unicodedata.normalize("NFKC", text))
        return re.sub(r"\s+", " ", text.lower())

    def normalize(self, text: str) -> str:
        raise NotImplementedError(
            "Whisper's EnglishTextNormalizer is not implemented in hugkit; use basic_normalize(text)."
        )

    # --- prompts -----------------------------------------------------------------------------------
    @property
    def prefix_tokens(self) -> list[int]:
        """``<|startoftranscript|>`` [language] [task] [``<|notimestamps|>``], from this tokenizer's settings."""
        start = self._id("<|startoftranscript|>")
        sequence = [start]
        if self.language is not None:
            code = language_code(self.language)
            sequence.append(start + 1 + list(LANGUAGES).index(code))
        if self.task is not None:
            if self.task not in TASK_IDS:
                raise ValueError(f"Unsupported task {self.task!r}: Whisper's tasks are {TASK_IDS}.")
            sequence.append(self._id("<|transcribe|>") if self.task == "transcribe" else self._id("<|translate|>"))
        if not self.predict_timestamps:
            sequence.append(self._id("<|notimestamps|>"))
        return sequence

    def set_prefix_tokens(self, language: str | None = None, task: str | None = None,
                          predict_timestamps: bool | None = None) -> None:
        """Change the tokens ``__call__`` puts before the text (and after which it puts ``<|endoftext|>``)."""
        from tokenizers import processors

        if language is not None:
            language_code(language)  # fails early, naming the languages
            self.language = language
        if task is not None:
            if task not in TASK_IDS:
                raise ValueError(f"Unsupported task {task!r}: Whisper's tasks are {TASK_IDS}.")
            self.task = task
        if predict_timestamps is not None:
            self.predict_timestamps = bool(predict_timestamps)
        prefix = self.prefix_tokens
        names = self.convert_ids_to_tokens(prefix)
        eos, eos_id = self.eos_token, self.eos_token_id
        template = " ".join(f"{name}:0" for name in names)
        self._backend.post_processor = processors.TemplateProcessing(
            single=f"{template} $A:0 {eos}:0",
            pair=f"{template} $A:0 $B:1 {eos}:1",
            special_tokens=[(eos, eos_id), *zip(names, prefix)],
        )

    def get_decoder_prompt_ids(self, task: str | None = None, language: str | None = None,
                               no_timestamps: bool = True) -> list[tuple[int, int]]:
        """``[(1, language id), (2, task id), (3, <|notimestamps|>)]``: the tokens forced after the start token."""
        self.set_prefix_tokens(task=task, language=language, predict_timestamps=not no_timestamps)
        return [(position + 1, token) for position, token in enumerate(self.prefix_tokens[1:])]

    def get_prompt_ids(self, text: str, return_tensors: str | None = "np") -> Any:
        """``<|startofprev|>`` + the text's ids: a prompt (previous context) for ``generate(prompt_ids=...)``."""
        ids = [self._id("<|startofprev|>")] + self.encode(" " + text.strip(), add_special_tokens=False)
        first_special = self.all_special_ids[0]
        for token in ids[1:]:
            if token >= first_special:
                raise ValueError(
                    f"The prompt text holds the special token {self.convert_ids_to_tokens(token)!r}, which a prompt "
                    "may not contain. Remove it from the text."
                )
        if return_tensors in (None, "list"):
            return ids
        if return_tensors == "np":
            import numpy as np

            return np.array(ids, dtype=np.int64)
        if return_tensors == "pt":
            import torch

            return torch.tensor(ids, dtype=torch.long)
        raise ValueError(f"return_tensors must be 'np', 'pt' or None, got {return_tensors!r}.")

    # --- the ASR pipeline's merging ----------------------------------------------------------------
    def decode_asr(self, model_outputs: Sequence[dict], *, return_timestamps: Any = False,
                   return_language: Any = None, time_precision: float = 0.02,
                   segment_size: int = 1500) -> tuple[str, dict]:
        return decode_asr(self, model_outputs, return_timestamps=return_timestamps, return_language=return_language,
                          time_precision=time_precision, segment_size=segment_size)

    _decode_asr = decode_asr


WhisperTokenizerFast = WhisperTokenizer  # transformers' other name for it

_DIACRITICS = {"œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS", "đ": "d",
               "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L"}


# --------------------------------------------------------------------------------------------------
# merging chunked outputs (transformers' ``_decode_asr``)
# --------------------------------------------------------------------------------------------------
def _rows(value: Any) -> list:
    """The first row of a (1, n) tensor/array/list as a Python list (a 1-D value as is)."""
    value = to_python(value)
    if value and isinstance(value[0], (list, tuple)):
        return list(value[0])
    return list(value)


class _AsrMerger:
    """The state machine of transformers' ``_decode_asr``: walks every token of every chunk, closes a chunk of
    text at each end timestamp, and resolves the overlapping strides with ``find_longest_common_sequence``."""

    def __init__(self, tokenizer: WhisperTokenizer, return_timestamps: Any, return_language: Any,
                 time_precision: float, segment_size: int) -> None:
        self.tokenizer = tokenizer
        self.words = return_timestamps == "word"
        self.return_timestamps = return_timestamps
        self.return_language = return_language
        self.precision = time_precision
        self.segment_size = segment_size
        self.language: str | None = None
        self.chunks: list[dict] = []
        self.chunk = self._new_chunk()
        self.time_offset = 0.0
        self.timestamp_begin = tokenizer.convert_tokens_to_ids("<|notimestamps|>") + 1
        self.special = set(tokenizer.all_special_ids)
        self.pending: list[list[int]] = []  # token runs waiting to be merged into the current chunk
        self.pending_times: list[list[tuple[float, float]]] = []
        self.skip = False

    def _new_chunk(self) -> dict:
        return {"language": self.language, "timestamp": [None, None], "text": ""}

    def _resolve(self) -> tuple[list[int], list]:
        return find_longest_common_sequence(self.pending, self.pending_times)

    def _close_chunk(self, tokens: list[int], times: list) -> None:
        self.chunk["text"] = self.tokenizer.decode(tokens)
        if self.words:
            self.chunk["words"] = _word_timestamps(self.tokenizer, tokens, times, self.language, self.return_language)
        self.chunks.append(self.chunk)

    def feed(self, output: dict) -> None:
        tokenizer, begin, precision = self.tokenizer, self.timestamp_begin, self.precision
        ids = tokenizer.strip_prompt(_rows(output["tokens"]))
        token_times = [float(t) for t in _rows(output["token_timestamps"])] if self.words else []
        last_timestamp = None  # timestamps from here on fall in the right stride: not split on
        first_timestamp = begin  # timestamps before this fall in the left stride
        latest = before_latest = window_offset = 0.0
        if "stride" in output:
            chunk_seconds, left, right = output["stride"]
            self.time_offset -= left
            right_start = chunk_seconds - right
            if left:
                first_timestamp = left / precision + begin
            if right:
                for token in reversed(ids):
                    if token >= begin:
                        if last_timestamp is not None and (token - begin) * precision < right_start:
                            break
                        last_timestamp = token
        current: list[int] = []
        current_times: list[tuple[float, float]] = []
        for i, token in enumerate(ids):
            if token in self.special:
                name = tokenizer.decode([token])[2:-2]
                language = LANGUAGES.get(name)
                if language is None:
                    continue
                if self.language and language != self.language and not self.return_timestamps:
                    self.pending.append(current)
                    tokens, _ = find_longest_common_sequence(self.pending, [])
                    self.chunk["text"] = tokenizer.decode(tokens)
                    self.chunks.append(self.chunk)
                    self.pending, current = [], []
                    self.chunk = self._new_chunk()
                self.chunk["language"] = language
                self.language = language
            elif token >= begin:
                stamp = (token - begin) * precision
                if stamp < latest:  # long-form output: the next 30-s window started
                    single_ending = i >= 2 and not (ids[i - 1] >= begin and ids[i - 2] >= begin)
                    if single_ending:
                        window_offset += precision * self.segment_size
                    else:
                        latest = before_latest
                        window_offset += before_latest
                before_latest, latest = latest, stamp
                time = round((token - begin) * precision + self.time_offset + window_offset, 2)
                if last_timestamp and token >= last_timestamp:
                    self.skip = True  # inside the right stride; its pair is skipped too
                elif self.skip or (self.pending and token < first_timestamp):
                    self.skip = False
                elif self.chunk["timestamp"][0] is None:
                    self.chunk["timestamp"][0] = time
                elif time != self.chunk["timestamp"][0]:  # equal: a repeated start token, not an end
                    self.chunk["timestamp"][1] = time
                    self.pending.append(current)
                    if self.words:
                        self.pending_times.append(current_times)
                    self._close_chunk(*self._resolve())
                    self.pending, current, self.pending_times, current_times = [], [], [], []
                    self.chunk = self._new_chunk()
            else:
                current.append(token)
                if self.words:
                    start = round((token_times[i - 1] if i else 0.0) + self.time_offset, 2)
                    current_times.append((start, round(token_times[i] + self.time_offset, 2)))
        if "stride" in output:
            self.time_offset += chunk_seconds - right
        if current:
            self.pending.append(current)
            if self.words:
                self.pending_times.append(current_times)
        elif not any(self.pending):
            self.chunk = self._new_chunk()
            self.pending, self.pending_times = [], []

    def finish(self) -> tuple[str, dict]:
        if self.pending:
            if self.return_timestamps:
                logger.info(
                    "Whisper predicted no final timestamp (the audio may end mid-word); the last chunk's end time "
                    "is None."
                )
            self._close_chunk(*self._resolve())
        text = "".join(chunk["text"] for chunk in self.chunks)
        if not (self.return_timestamps or self.return_language):
            return text, {}
        for chunk in self.chunks:
            if self.return_timestamps:
                chunk["timestamp"] = tuple(chunk["timestamp"])
            else:
                chunk.pop("timestamp")
            if not self.return_language:
                chunk.pop("language")
        if self.words:
            return text, {"chunks": [word for chunk in self.chunks for word in chunk["words"]]}
        return text, {"chunks": self.chunks}


def decode_asr(tokenizer: WhisperTokenizer, model_outputs: Iterable[dict], *, return_timestamps: Any = False,
               return_language: Any = None, time_precision: float = 0.02,
               segment_size: int = 1500) -> tuple[str, dict]:
    """``(text, optional)`` for one input from its chunks' outputs, each ``{"tokens": (1, n) ids, "stride":
    (chunk_s, left_s, right_s) (chunked input only), "token_timestamps": (1, n) seconds (word timestamps only)}``;
    ``optional`` is ``{"chunks": [...]}`` when timestamps or the language are asked for."""
    merger = _AsrMerger(tokenizer, return_timestamps, return_language, time_precision, segment_size)
    for output in model_outputs:
        merger.feed(output)
    return merger.finish()


def find_longest_common_sequence(sequences: list[list[int]], token_times: list[list] | None = None) -> Any:
    """Join token runs of overlapping chunks into one: each pair is aligned where they agree best (most equal tokens
    for their overlap, longer overlaps winning ties), and the seam is put in the middle of that overlap (the left run
    is trusted for its first half, the right for its second). With ``token_times`` (per-token ``(start, end)``),
    tokens only count as equal when their times are in order, and the times are cut at the same seams.

    Returns the merged tokens, or ``(tokens, times)`` when ``token_times`` is given (``[]`` for no times).
    """
    merger = SequenceMerger(sequences[0], token_times[0] if token_times else None)
    for index, right in enumerate(sequences[1:], start=1):
        merger.add(right, token_times[index] if token_times else None)
    tokens, times = merger.finish()
    if token_times is None:
        return tokens
    return tokens, (times if token_times else [])


class SequenceMerger:
    """``find_longest_common_sequence`` one run at a time: after each ``add``, ``merged`` holds the tokens that no
    later run can change (the part left of the last seam), so chunked transcripts can be streamed as they merge."""

    def __init__(self, first: Sequence[int], first_times: Sequence | None = None) -> None:
        self.merged: list[int] = []
        self.merged_times: list = []
        self.left = list(first)
        self.left_times = list(first_times) if first_times is not None else None

    def add(self, right: Sequence[int], right_times: Sequence | None = None) -> None:
        left, left_times, right = self.left, self.left_times, list(right)
        n_left, n_right = len(left), len(right)
        use_times = right_times is not None and left_times is not None
        best = 0.0
        best_span = (n_left, n_left, 0, 0)
        for shift in range(1, n_left + n_right):
            left_start, left_stop = max(0, n_left - shift), min(n_left, n_left + n_right - shift)
            right_start, right_stop = max(0, shift - n_left), min(n_right, shift)
            if use_times:
                matches = sum(
                    1 for k in range(left_stop - left_start)
                    if left[left_start + k] == right[right_start + k]
                    and left_times[left_start + k] <= right_times[right_start + k]
                )
            else:
                matches = sum(1 for a, b in zip(left[left_start:left_stop], right[right_start:right_stop]) if a == b)
            score = matches / shift + shift / 10000.0  # the epsilon favours long perfect matches
            if matches > 1 and score > best:
                best = score
                best_span = (left_start, left_stop, right_start, right_stop)
        left_start, left_stop, right_start, right_stop = best_span
        left_mid = (left_stop + left_start) // 2
        right_mid = (right_stop + right_start) // 2
        self.merged.extend(left[:left_mid])
        self.left = right[right_mid:]
        if use_times:
            self.merged_times.extend(left_times[:left_mid])
            self.left_times = list(right_times[right_mid:])

    def finish(self) -> tuple[list[int], list]:
        """All tokens (and times, where given): ``merged`` plus the last run's rest."""
        self.merged.extend(self.left)
        self.left = []
        if self.left_times is not None:
            self.merged_times.extend(self.left_times)
            self.left_times = []
        return self.merged, self.merged_times


# --------------------------------------------------------------------------------------------------
# words (for word-level timestamps)
# --------------------------------------------------------------------------------------------------
def _word_timestamps(tokenizer: WhisperTokenizer, tokens: list[int], times: list, language: str | None,
                     return_language: Any) -> list[dict]:
    words, _, indices = combine_tokens_into_words(tokenizer, tokens, language)
    extra = {"language": language} if return_language else {}
    return [{"text": word, "timestamp": (times[group[0]][0], times[group[-1]][1]), **extra}
            for word, group in zip(words, indices)]


def combine_tokens_into_words(tokenizer: WhisperTokenizer, tokens: list[int], language: str | None = None,
                              prepend_punctuations: str = _PREPEND_PUNCTUATION,
                              append_punctuations: str = _APPEND_PUNCTUATION) -> tuple[list, list, list]:
    """Group tokens into words: ``(words, tokens of each word, token indices of each word)``. Split on spaces (or,
    for languages written without them, on whole characters); opening punctuation joins the next word, closing
    punctuation the previous one."""
    language = language or getattr(tokenizer, "language", None) or "english"
    if language in _NO_SPACE_LANGUAGES:
        words, word_tokens, indices = _split_on_characters(tokenizer, tokens)
    else:
        words, word_tokens, indices = _split_on_spaces(tokenizer, tokens)
    _merge_punctuation(words, word_tokens, indices, prepend_punctuations, append_punctuations)
    return words, word_tokens, indices


def _split_on_characters(tokenizer: WhisperTokenizer, tokens: list[int]) -> tuple[list, list, list]:
    """Cut wherever the tokens so far decode to whole characters (no U+FFFD that the full text lacks)."""
    full = tokenizer.decode(tokens, decode_with_timestamps=True)
    replacement = "\ufffd"
    words, word_tokens, indices = [], [], []
    current, current_indices = [], []
    position = 0
    for index, token in enumerate(tokens):
        current.append(token)
        current_indices.append(index)
        text = tokenizer.decode(current, decode_with_timestamps=True)
        bad = text.find(replacement)
        if bad < 0 or position + bad >= len(full) or full[position + bad] == replacement:
            words.append(text)
            word_tokens.append(current)
            indices.append(current_indices)
            current, current_indices = [], []
            position += len(text)
    return words, word_tokens, indices


def _split_on_spaces(tokenizer: WhisperTokenizer, tokens: list[int]) -> tuple[list, list, list]:
    pieces, piece_tokens, piece_indices = _split_on_characters(tokenizer, tokens)
    words, word_tokens, indices = [], [], []
    eos = tokenizer.eos_token_id
    for piece, ids, where in zip(pieces, piece_tokens, piece_indices):
        starts_word = ids[0] >= eos or piece.startswith(" ") or piece.strip() in _ASCII_PUNCTUATION
        if starts_word or not words:
            words.append(piece)
            word_tokens.append(ids)
            indices.append(where)
        else:
            words[-1] += piece
            word_tokens[-1].extend(ids)
            indices[-1].extend(where)
    return words, word_tokens, indices


def _merge_punctuation(words: list, tokens: list, indices: list, prepended: str, appended: str) -> None:
    """In place: opening punctuation (with its leading space) onto the following word, closing onto the previous."""
    target = len(words) - 1
    for i in range(len(words) - 2, -1, -1):
        if words[i].startswith(" ") and words[i].strip() in prepended:
            words[target] = words[i] + words[target]
            tokens[target] = tokens[i] + tokens[target]
            indices[target] = indices[i] + indices[target]
            words[i], tokens[i], indices[i] = "", [], []
        else:
            target = i
    target = 0
    for j in range(1, len(words)):
        if not words[target].endswith(" ") and words[j] in appended:
            words[target] += words[j]
            tokens[target] += tokens[j]
            indices[target] += indices[j]
            words[j], tokens[j], indices[j] = "", [], []
        else:
            target = j
    words[:] = [word for word in words if word]
    tokens[:] = [group for group in tokens if group]
    indices[:] = [group for group in indices if group]


__all__ = [
    "LANGUAGES", "TO_LANGUAGE_CODE", "TASK_IDS", "WhisperTokenizer", "WhisperTokenizerFast", "combine_tokens_into_words", "decode_asr",
    "find_longest_common_sequence", "language_code", "SequenceMerger",
]
