"""Streaming transcription: ``asr.stream(chunks)`` turns audio that is still arriving into growing transcripts;
``asr(audio, stream=True)`` yields one recording's text as it is decoded (``AsrTextStream``, at the end).

The policy is LocalAgreement-2, as whisper_streaming (Macháček et al., 2023) uses it: the audio received so far is
kept in a buffer of at most ``max_window_s`` seconds; every ``step_s`` seconds of new audio the buffer is transcribed
again (Whisper, with segment timestamps, greedy by default), and the words that this transcript and the previous
one agree on, from the start of what is not yet committed, are committed: they become ``stable`` and never change.
The rest is ``unstable`` (tentative: the next transcript may revise it). Once the buffer is longer than ``trim_s``,
it is cut at the end of the last timestamped segment whose words are all committed, so it stays inside Whisper's
30-second window; the committed text before the buffer is given to the model as its prompt (previous context).
When the chunks end, the rest is transcribed once more and everything is committed (``final=True``).

Chunks are numpy arrays or torch tensors of samples at the feature extractor's rate (16 kHz; integer PCM is scaled,
stereo averaged), or dicts ``{"array" | "raw": samples, "sampling_rate": rate}`` (resampled, with one resampler for
the whole stream so block edges leave no trace). Any chunk size works: large chunks are processed ``step_s`` at a
time, small ones are collected until ``step_s`` seconds have arrived.

Each update is a ``StreamingTranscript``: ``text`` (= ``stable + unstable``), ``stable``, ``unstable``,
``new_stable`` (committed by this update), and timing: ``audio_end`` (seconds received), ``stable_until`` (about
where in the audio the stable text ends; from segment timestamps, to a fraction of a second), ``buffer_start``
and ``compute_seconds`` (this update's transcription time).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

logger = logging.getLogger(__name__)

_WORD = re.compile(r"\s*\S+")
_PROMPT_CHARACTERS = 200  # committed text given as the prompt, as whisper_streaming gives it
_ALIGN_SLACK = 3  # how far (in words) the re-transcribed committed words may be from where they are expected


@dataclass
class StreamingTranscript:
    """One update of a live transcription (see the module docstring)."""

    text: str
    stable: str
    unstable: str
    new_stable: str
    audio_end: float
    stable_until: float
    buffer_start: float
    compute_seconds: float
    final: bool = False

    def __str__(self) -> str:
        return self.text


@dataclass
class _Word:
    text: str  # with its leading space, as Whisper writes it
    segment: int  # index of its segment in the transcript it came from
    end: float | None  # about when it ends, seconds from the buffer's start


class StreamingTranscriber:
    """LocalAgreement-2 over a sliding window, for one stream of audio (see the module docstring).

    ``step_s``: new audio between transcriptions (latency vs compute); ``trim_s``: buffer length from which it is cut
    at a committed segment end; ``max_window_s``: the longest buffer (below Whisper's 30 s; past it, text that cannot
    be cut at a committed segment is committed anyway); ``prompt``: give the committed text before the buffer as the
    prompt; ``generate_kwargs``: for ``generate`` (greedy, ``num_beams=1``, unless given).
    """

    def __init__(self, pipe: Any, *, step_s: float = 1.0, trim_s: float = 15.0, max_window_s: float = 25.0,
                 prompt: bool = True, generate_kwargs: dict[str, Any] | None = None) -> None:
        window = float(pipe.feature_extractor.chunk_length)
        for name, value in (("step_s", step_s), ("trim_s", trim_s), ("max_window_s", max_window_s)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}.")
        if not step_s < trim_s <= max_window_s <= window - step_s:
            raise ValueError(
                f"Need step_s < trim_s <= max_window_s <= {window:g} - step_s (Whisper hears {window:g} s at a time); "
                f"got step_s={step_s}, trim_s={trim_s}, max_window_s={max_window_s}."
            )
        self.pipe = pipe
        self.rate = pipe.sampling_rate
        self.step = int(round(step_s * self.rate))
        self.trim = trim_s
        self.max_window = max_window_s
        self.use_prompt = prompt
        self.generate_kwargs = {"num_beams": 1, **dict(generate_kwargs or {})}
        if "return_timestamps" in self.generate_kwargs or "stopping_criteria" in self.generate_kwargs:
            raise ValueError("generate_kwargs may not set return_timestamps or stopping_criteria: streaming sets them.")
        self._resampler: Any = None
        self._source_rate: float | None = None

    # --- driving -----------------------------------------------------------------------------------
    def run(self, chunks: Iterable[Any]) -> Iterator[StreamingTranscript]:
        """Yield an update after each transcription, and a final one when ``chunks`` ends."""
        if isinstance(chunks, (bytes, str)) or not isinstance(chunks, Iterable):
            raise TypeError(
                "asr.stream() takes an iterable of audio chunks (numpy arrays at 16 kHz, or dicts with 'array' and "
                f"'sampling_rate'), found {type(chunks).__name__}. For one recording, call asr(audio) instead."
            )
        return self._run(iter(chunks))

    def _run(self, chunks: Iterator[Any]) -> Iterator[StreamingTranscript]:
        self._resampler, self._source_rate = None, None
        self.buffer = np.zeros(0, dtype=np.float32)
        self.offset = 0.0  # stream time of buffer[0]
        self.received = 0  # samples received
        self.committed: list[str] = []  # every committed word
        self.in_buffer: list[str] = []  # the committed words the buffer's audio holds (its transcript's start)
        self.tentative: list[_Word] = []
        self.stable_until = 0.0
        pending = 0  # samples since the last transcription
        for index, chunk in enumerate(chunks):
            samples = self._samples(chunk, index)
            for start in range(0, len(samples), self.step):
                piece = samples[start : start + self.step]
                self.buffer = np.concatenate([self.buffer, piece])
                self.received += len(piece)
                pending += len(piece)
                if pending >= self.step:
                    pending = 0
                    yield self._update(final=False)
        tail = self._flush_resampler()
        if len(tail):
            self.buffer = np.concatenate([self.buffer, tail])
            self.received += len(tail)
            pending += len(tail)
        yield self._update(final=True, transcribe=bool(pending) or bool(self.tentative))

    # --- one update --------------------------------------------------------------------------------
    def _update(self, final: bool, transcribe: bool = True) -> StreamingTranscript:
        started = time.perf_counter()
        committed_before = len(self.committed)
        words, segment_ends = self._transcribe() if transcribe and len(self.buffer) else ([], [])
        skip = _committed_prefix(words, self.in_buffer)
        hypothesis = words[skip:]
        if final:
            agreed = hypothesis if transcribe else list(self.tentative)
        else:
            agreed = []
            for new, old in zip(hypothesis, self.tentative):
                if new.text.strip() != old.text.strip():
                    break
                agreed.append(new)
        self.committed.extend(word.text for word in agreed)
        self.in_buffer.extend(word.text for word in agreed)
        if agreed and agreed[-1].end is not None:
            self.stable_until = max(self.stable_until, self.offset + agreed[-1].end)
        self.tentative = [] if final else hypothesis[len(agreed):]
        if not final:
            self._trim(words, segment_ends, skip + len(agreed))
        stable, unstable = "".join(self.committed), "".join(word.text for word in self.tentative)
        return StreamingTranscript(
            text=stable + unstable, stable=stable, unstable=unstable,
            new_stable="".join(self.committed[committed_before:]),
            audio_end=self.received / self.rate, stable_until=self.stable_until, buffer_start=self.offset,
            compute_seconds=time.perf_counter() - started, final=final,
        )

    def _transcribe(self) -> tuple[list[_Word], list[float | None]]:
        """The buffer's words, each with its segment and estimated end, and each segment's end (buffer time)."""
        pipe = self.pipe
        kwargs = dict(self.generate_kwargs)
        before = self.committed[: len(self.committed) - len(self.in_buffer)]
        if self.use_prompt and before:
            text = "".join(before)[-_PROMPT_CHARACTERS:]
            kwargs["prompt_ids"] = pipe.tokenizer.get_prompt_ids(text.strip(), return_tensors="pt").to(pipe.device)
        options = {"generate": kwargs, "return_timestamps": True, "return_language": None}
        with pipe.torch.inference_mode():
            rows = pipe._forward_windows([{"samples": self.buffer, "long_form": False}], options)
        precision = pipe.feature_extractor.chunk_length / pipe.model.config.max_source_positions
        _, optional = pipe.tokenizer.decode_asr(rows, return_timestamps=True, time_precision=precision)
        words: list[_Word] = []
        ends: list[float | None] = []
        duration = len(self.buffer) / self.rate
        for index, chunk in enumerate(optional.get("chunks", [])):
            start, end = chunk["timestamp"]
            ends.append(end)
            pieces = _WORD.findall(chunk["text"])
            total = sum(len(p) for p in pieces) or 1
            seen = 0
            span_start = start if start is not None else 0.0
            span_end = end if end is not None else duration
            for piece in pieces:
                seen += len(piece)
                estimate = span_start + (span_end - span_start) * seen / total
                words.append(_Word(piece, index, min(estimate, duration)))
        return words, ends

    def _trim(self, words: list[_Word], segment_ends: list[float | None], committed_count: int) -> None:
        """Cut the buffer at the end of the last segment whose words are all committed, once it is long enough;
        past ``max_window_s``, commit what keeps it from being cut."""
        duration = len(self.buffer) / self.rate
        if duration <= self.trim:
            return
        cut = _last_committed_segment(words, segment_ends, committed_count)
        if cut is None and duration > self.max_window:
            cut = self._force_commit(words, segment_ends, committed_count, duration)
            committed_count = len(words) - len(self.tentative)
        if cut is None:
            return
        segment, cut_time = cut
        last_word = max((i for i, word in enumerate(words) if word.segment <= segment), default=-1)
        self.in_buffer = [word.text for word in words[last_word + 1 : max(committed_count, last_word + 1)]]
        cut_samples = int(round(cut_time * self.rate))
        self.buffer = self.buffer[cut_samples:]
        self.offset += cut_samples / self.rate

    def _force_commit(self, words: list[_Word], segment_ends: list[float | None], committed_count: int,
                      duration: float) -> tuple[int, float]:
        """Commit the tentative words up to the first segment end that leaves ``step_s`` of room in the buffer (or
        the last segment end, or, with no timestamps at all, every word) and return where to cut."""
        room = duration - (self.max_window - self.step / self.rate)
        ends = [(i, float(end)) for i, end in enumerate(segment_ends) if end is not None and 0 < end <= duration]
        later = [(i, end) for i, end in ends if end >= room]
        if later:
            segment, cut_time = later[0]
        elif ends:
            segment, cut_time = ends[-1]
        else:
            segment, cut_time = len(segment_ends), duration
        forced = [word for word in words[committed_count:] if word.segment <= segment]
        logger.debug("Streaming buffer at %.1f s with no agreed segment to cut at: committing %d words.", duration,
                     len(forced))
        self.committed.extend(word.text for word in forced)
        self.tentative = self.tentative[len(forced):]
        if forced and forced[-1].end is not None:
            self.stable_until = max(self.stable_until, self.offset + forced[-1].end)
        return segment, cut_time

    # --- input -------------------------------------------------------------------------------------
    def _samples(self, chunk: Any, index: int) -> np.ndarray:
        from .io import to_mono

        if isinstance(chunk, (bytes, bytearray, memoryview, str)):
            raise TypeError(
                f"Chunk {index} is {type(chunk).__name__}; stream chunks are samples. For raw 16-bit PCM bytes, pass "
                "np.frombuffer(data, dtype=np.int16); for a file, iterate hugkit.audio.stream_audio(path, "
                "block_seconds=1.0)."
            )
        rate = self.rate
        if isinstance(chunk, dict):
            samples = chunk.get("array", chunk.get("raw"))
            rate = chunk.get("sampling_rate")
            if samples is None or rate is None:
                raise ValueError(
                    f"Chunk {index} is a dict with keys {sorted(chunk)}; it needs 'array' (or 'raw') and "
                    "'sampling_rate'."
                )
            chunk = samples
        try:
            mono = to_mono(chunk)
        except ValueError as error:
            if "empty" in str(error):
                return np.zeros(0, dtype=np.float32)
            raise ValueError(f"Chunk {index}: {error}") from None
        if self._source_rate is None:
            self._source_rate = rate
        elif rate != self._source_rate:
            raise ValueError(
                f"Chunk {index} is at {rate} Hz, but the stream started at {self._source_rate} Hz. Keep one rate for "
                "the whole stream."
            )
        if rate == self.rate:
            return mono
        if self._resampler is None:
            try:
                import soxr
            except ImportError:
                raise ImportError("Resampling stream chunks needs soxr: pip install 'hugkit[audio]'") from None
            self._resampler = soxr.ResampleStream(rate, self.rate, 1, dtype="float32", quality="HQ")
        return self._resampler.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32), last=False)

    def _flush_resampler(self) -> np.ndarray:
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        return self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)


def _normal(word: str) -> str:
    return re.sub(r"[^\w']+", "", word.lower())


def _committed_prefix(words: list[_Word], committed: list[str]) -> int:
    """How many of the transcript's first words re-transcribe the committed words the buffer holds: where the last
    few committed words match best near their expected place (a word or two may come out differently)."""
    if not committed or not words:
        return 0
    expected = len(committed)
    best, best_score = min(expected, len(words)), -1.0
    tail = [_normal(word) for word in committed[-5:]]
    for k in range(max(0, expected - _ALIGN_SLACK), min(len(words), expected + _ALIGN_SLACK) + 1):
        m = min(len(tail), k)
        if m == 0:
            continue
        got = [_normal(word.text) for word in words[k - m : k]]
        score = sum(a == b for a, b in zip(got, tail[-m:])) / len(tail) - abs(k - expected) * 0.01
        if score > best_score:
            best, best_score = k, score
    return best


def _last_committed_segment(words: list[_Word], segment_ends: list[float | None],
                            committed_count: int) -> tuple[int, float] | None:
    """(segment, end) of the last segment ending in the buffer whose words are all among the first
    ``committed_count`` (committed)."""
    best = None
    for segment, end in enumerate(segment_ends):
        if end is None or end <= 0:
            continue
        indices = [i for i, word in enumerate(words) if word.segment == segment]
        if indices and indices[-1] < committed_count:
            best = (segment, float(end))
    return best


# --------------------------------------------------------------------------------------------------
# asr(audio, stream=True): one recording's text as it is decoded
# --------------------------------------------------------------------------------------------------
class AsrTextStream:
    """An iterator of text pieces of one transcription; ``"".join(pieces)`` is the text the call without
    ``stream=True`` returns (with the same decoding settings). ``result`` is ``{"text": ...}`` once it has ended;
    ``close()`` (or leaving a ``with`` block, or dropping the stream) stops the transcription."""

    def __init__(self, pipe: Any, token_runs: Iterator[list[int]]) -> None:
        from ..generation.streaming import IncrementalDecoder

        self._tokens = token_runs
        self._decoder = IncrementalDecoder(pipe.tokenizer, skip_special_tokens=True)
        self._tokenizer = pipe.tokenizer
        self._pending: list[int] = []
        self.result: dict[str, Any] | None = None

    def __iter__(self) -> "AsrTextStream":
        return self

    def __next__(self) -> str:
        if self.result is not None:
            raise StopIteration
        while True:
            while self._pending:
                chunk = self._decoder.push(int(self._pending.pop(0)))
                if chunk:
                    return chunk
            try:
                self._pending = list(next(self._tokens))
            except StopIteration:
                chunk = self._decoder.flush()
                self.result = {"text": self._tokenizer.decode(self._decoder.ids, skip_special_tokens=True)}
                if chunk:
                    return chunk
                raise StopIteration from None

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return self._tokenizer.decode(self._decoder.ids, skip_special_tokens=True)

    def close(self) -> None:
        self._tokens.close()

    def __enter__(self) -> "AsrTextStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def stream_tokens(pipe: Any, window: dict, kwargs: dict) -> Iterator[list[int]]:
    """The new tokens of one window's ``generate``, step by step.

    ``generate`` runs in a worker thread with a stopping criterion that hands each step's new tokens over a queue
    (and ends the decoding when the stream is closed): Whisper's ``generate`` offers no token generator of its own.
    """
    import queue
    import threading

    torch = pipe.torch
    features = pipe._featurize([window["samples"]], False)
    handoff: queue.Queue = queue.Queue()
    stop = threading.Event()
    seen: list = [None]  # the decoder ids at the previous step

    def tap(input_ids: Any, scores: Any = None, **_: Any) -> Any:
        previous = seen[0]
        if previous is not None and input_ids.shape[1] > previous.shape[1] and torch.equal(
                input_ids[:, : previous.shape[1]], previous):
            new = input_ids[0, previous.shape[1]:]
        else:
            new = input_ids[0, -1:]  # the first step: the last id is the one generated
        seen[0] = input_ids.clone()
        handoff.put(("tokens", new.tolist()))
        return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

    settings = dict(kwargs)
    criteria = [*(settings.pop("stopping_criteria", None) or []), tap]

    def work() -> None:
        try:
            with torch.inference_mode():
                pipe.model.generate(input_features=features["input_features"],
                                    attention_mask=features["attention_mask"], stopping_criteria=criteria, **settings)
            handoff.put(("end", None))
        except BaseException as error:  # handed to the consumer
            handoff.put(("error", error))

    worker = threading.Thread(target=work, name="hugkit-asr-stream", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = handoff.get()
            if kind == "tokens":
                yield [token for token in value if token < pipe.tokenizer.timestamp_begin]
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def stream_windows(pipe: Any, item: Any, options: dict) -> Iterator[list[int]]:
    """Merged tokens of a chunked transcription as each window is merged with the one before it (the chunked
    call's algorithm, run incrementally: tokens left of a seam never change)."""
    from .whisper_decoding import SequenceMerger

    special = set(pipe.tokenizer.all_special_ids)
    begin = pipe.tokenizer.timestamp_begin
    merger = None
    with pipe.torch.inference_mode():
        for window in pipe._windows(item, options):
            (row,) = pipe._forward_windows([window], {**options, "return_timestamps": None})
            ids = pipe.tokenizer.strip_prompt(row["tokens"][0].tolist())
            tokens = [token for token in ids if token not in special and token < begin]
            if not tokens:
                continue
            if merger is None:
                merger = SequenceMerger(tokens)
                continue
            done = len(merger.merged)
            merger.add(tokens)
            yield merger.merged[done:]
    if merger is not None:
        done = len(merger.merged)
        yield merger.finish()[0][done:]


__all__ = ["AsrTextStream", "StreamingTranscriber", "StreamingTranscript", "stream_tokens", "stream_windows"]
