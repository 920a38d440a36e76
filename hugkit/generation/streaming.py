"""Streaming text: ``stream`` folds ``generate_tokens`` into text chunks; transformers' streamers for ``generate``.
Both work for decoder-only and encoder-decoder models (for the latter the text is the decoder's output).

``stream(model, tokenizer, prompt_or_messages, **generate_kwargs)`` returns a ``TextStream``: iterate it for text
chunks. The chunks are decode-safe: a character split across tokens (UTF-8 bytes of byte-level BPE, SentencePiece
byte-fallback tokens) is held back until it is complete, and word-start spaces come out where ``decode`` puts them,
so ``"".join(chunks) == tokenizer.decode(new_tokens, skip_special_tokens=True)``. When the iteration ends,
``TextStream.result`` holds a ``StreamResult`` (finish reason "stop" / "length" / "stop_string", token counts, the
text and the ids). Breaking out of the loop and dropping the stream (or calling ``close()``, or using it as a context
manager) stops generation and frees its KV cache at once.

``astream(...)`` is the same for asyncio: the token loop runs in a worker thread, chunks arrive with ``async for``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import unicodedata
from dataclasses import dataclass, field
from queue import Queue
from typing import Any, Iterator

logger = logging.getLogger(__name__)

_REPLACEMENT = "\ufffd"


class IncrementalDecoder:
    """Turn token ids, pushed one step at a time, into text chunks whose concatenation is ``decode(all ids)``.

    Each step decodes a short window: the tokens of the previous chunk (as context, so prefix-space rules apply to
    both texts alike) plus the new ones, and emits what the new tokens add. Text ending in an incomplete character
    (U+FFFD) waits for the next token. Where the window's text is not an extension of its context (a decoder rule
    that depends on more than the window), the step falls back to decoding everything; ``flush`` reconciles against
    one full decode, so the invariant holds for any decoder.

    One case cannot be streamed exactly: with SentencePiece byte fallback, ``decode`` turns a whole run of
    ``<0xNN>`` pieces into one U+FFFD per byte when any byte of the run is invalid UTF-8, so valid characters
    already streamed from the start of such a run show as U+FFFD in the final ``decode``. Runs that are valid
    UTF-8 (all real text) stream exactly.
    """

    def __init__(self, tokenizer: Any, skip_special_tokens: bool = True, **decode_kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.decode_kwargs = {"skip_special_tokens": skip_special_tokens, **decode_kwargs}
        self.ids: list[int] = []
        self.emitted = 0  # characters emitted so far
        self._prefix = 0  # window start (context tokens begin here)
        self._read = 0  # tokens before this are emitted

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, **self.decode_kwargs)

    def push(self, ids: int | list[int]) -> str:
        self.ids.extend([ids] if isinstance(ids, int) else ids)
        context = self._decode(self.ids[self._prefix : self._read])
        window = self._decode(self.ids[self._prefix :])
        if window.endswith(_REPLACEMENT) or len(window) <= len(context):
            return ""
        if window.startswith(context) and (context or self._prefix == 0):
            chunk = window[len(context):]
        else:
            full = self._decode(self.ids)
            if full.endswith(_REPLACEMENT):
                return ""
            chunk = full[self.emitted:]
        self._prefix, self._read = self._read, len(self.ids)
        self.emitted += len(chunk)
        return chunk

    def flush(self) -> str:
        """The rest of the text (incomplete characters included, as ``decode`` writes them)."""
        full = self._decode(self.ids)
        if len(full) < self.emitted:
            logger.debug("Streamed text is longer than the final decode (%d > %d characters).", self.emitted, len(full))
            return ""
        chunk = full[self.emitted:]
        self.emitted = len(full)
        self._prefix = self._read = len(self.ids)
        return chunk


@dataclass
class StreamResult:
    """How a stream ended. ``finish_reason``: "stop" (an EOS token), "stop_string", "length" (max_new_tokens),
    or "cancelled" (closed before the end)."""

    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    text: str = ""
    token_ids: list[int] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class TextStream:
    """An iterator of text chunks over one generation; ``result`` is set when it ends (see module docs)."""

    def __init__(self, tokens: Iterator, decoder: IncrementalDecoder, prompt_tokens: int) -> None:
        self._tokens = tokens
        self._decoder = decoder
        self._pieces: list[str] = []
        self.prompt_tokens = prompt_tokens
        self.result: StreamResult | None = None

    def __iter__(self) -> "TextStream":
        return self

    def __next__(self) -> str:
        if self.result is not None:
            raise StopIteration
        while True:
            try:
                tokens = next(self._tokens)
            except StopIteration as end:
                summary = end.value or {}
                chunk = self._decoder.flush()
                reasons = summary.get("finish_reasons") or ["length"]
                self._finish(reasons[0], chunk)
                if chunk:
                    return chunk
                raise StopIteration from None
            chunk = self._decoder.push(int(tokens[0]))
            if chunk:
                self._pieces.append(chunk)
                return chunk

    def _finish(self, reason: str, last_chunk: str = "") -> None:
        if last_chunk:
            self._pieces.append(last_chunk)
        ids = list(self._decoder.ids)
        self.result = StreamResult(reason, self.prompt_tokens, len(ids), "".join(self._pieces), ids)

    @property
    def text(self) -> str:
        """The text streamed so far."""
        return "".join(self._pieces)

    def close(self) -> None:
        """Stop generating now and free the cache; ``result.finish_reason`` becomes "cancelled" if it had not ended."""
        self._tokens.close()
        if self.result is None:
            self._finish("cancelled")

    def __enter__(self) -> "TextStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


def _prompt_inputs(tokenizer: Any, prompt: Any, chat_options: dict[str, Any]) -> tuple[Any, Any]:
    """input_ids and attention_mask (batch 1) from a string, a message list, token ids or tokenizer output."""
    import torch

    from ..tokenization.chat_template import check_conversation

    if isinstance(prompt, str):
        if not prompt:
            raise ValueError("The prompt is an empty string: give some text (or messages) to continue.")
        encoded = tokenizer(prompt, return_tensors="pt")
        return encoded["input_ids"], encoded.get("attention_mask")
    if isinstance(prompt, (list, tuple)) and prompt and isinstance(prompt[0], dict):
        messages = check_conversation(prompt)
        continue_final = chat_options.pop("continue_final_message", None)
        if continue_final is None:
            continue_final = messages[-1]["role"] == "assistant"
        encoded = tokenizer.apply_chat_template(
            messages, add_generation_prompt=not continue_final, continue_final_message=continue_final,
            return_dict=True, return_tensors="pt", **chat_options,
        )
        return encoded["input_ids"], encoded.get("attention_mask")
    if isinstance(prompt, dict) and "input_ids" in prompt:
        return torch.as_tensor(prompt["input_ids"]), prompt.get("attention_mask")
    if isinstance(prompt, torch.Tensor):
        return prompt, None
    raise TypeError(
        "stream() takes a prompt string, a list of chat messages [{'role': ..., 'content': ...}], or token ids; "
        f"found {type(prompt).__name__}: {prompt!r:.80}"
    )


def stream(
    model: Any,
    tokenizer: Any,
    prompt: Any,
    *,
    skip_special_tokens: bool = True,
    chat_template_kwargs: dict[str, Any] | None = None,
    **generate_kwargs: Any,
) -> TextStream:
    """Generate from one prompt (text, chat messages or ids) and return a ``TextStream`` of text chunks.

    Chat messages go through the tokenizer's chat template with the generation prompt added (or, when the last
    message is the assistant's, continuing it). Keyword arguments are ``generate``'s (GenerationConfig fields such as
    ``max_new_tokens``, ``do_sample``, ``stop_strings``); errors in them surface here, before iteration.

    For an encoder-decoder model (BART, T5, Marian, ...) the prompt is the source text the encoder reads, and the
    stream is the decoder's output text (``decoder_input_ids=`` gives a decoder prompt, not streamed back).
    """
    from .loop import generate_tokens

    if getattr(getattr(model, "config", None), "is_encoder_decoder", False) and isinstance(prompt, (list, tuple)):
        raise TypeError(
            "stream() of an encoder-decoder model takes the source text (a string) or its token ids, not chat "
            "messages: the encoder reads the text and the stream is the decoder's output."
        )
    input_ids, attention_mask = _prompt_inputs(tokenizer, prompt, dict(chat_template_kwargs or {}))
    if input_ids.dim() == 2 and input_ids.shape[0] != 1:
        raise ValueError(f"stream() generates for one prompt at a time, found a batch of {input_ids.shape[0]}.")
    copies = generate_kwargs.get("num_return_sequences")
    if copies not in (None, 1):
        raise ValueError("stream() produces one sequence: num_return_sequences must be 1.")
    if generate_kwargs.get("stop_strings") is not None:
        generate_kwargs.setdefault("tokenizer", tokenizer)
    device = getattr(model, "device", None)
    if device is not None:
        input_ids = input_ids.to(device)
        attention_mask = attention_mask.to(device) if attention_mask is not None else None
    tokens = generate_tokens(model, input_ids, attention_mask, **generate_kwargs)
    decoder = IncrementalDecoder(tokenizer, skip_special_tokens=skip_special_tokens)
    return TextStream(tokens, decoder, prompt_tokens=int(input_ids.shape[-1]))


class AsyncTextStream:
    """``async for chunk in astream(...)``: a ``TextStream`` driven by a worker thread."""

    def __init__(self, text_stream: TextStream) -> None:
        self._stream = text_stream
        self._queue: asyncio.Queue | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._done = False

    @property
    def result(self) -> StreamResult | None:
        return self._stream.result

    def __aiter__(self) -> "AsyncTextStream":
        return self

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        queue = self._queue = asyncio.Queue()
        # The worker holds no reference to self, so dropping this object (e.g. leaving ``async for`` early) stops it.
        text_stream, stop = self._stream, self._stop

        def send(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the event loop is gone: nobody is listening
                stop.set()

        def work() -> None:
            try:
                for chunk in text_stream:
                    if stop.is_set():
                        break
                    send("chunk", chunk)
            except BaseException as error:  # handed to the consumer
                send("error", error)
            finally:
                text_stream.close()
                send("end", None)

        self._thread = threading.Thread(target=work, name="hugkit-astream", daemon=True)
        self._thread.start()

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        if self._thread is None:
            self._start()
        kind, value = await self._queue.get()
        if kind == "chunk":
            return value
        self._done = True
        if kind == "error":
            raise value
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop the worker after its current step; generation ends and the cache is freed."""
        self._stop.set()
        self._done = True
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        else:
            self._stream.close()

    def __del__(self) -> None:
        self._stop.set()

    async def __aenter__(self) -> "AsyncTextStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()


def astream(model: Any, tokenizer: Any, prompt: Any, **kwargs: Any) -> AsyncTextStream:
    """``stream`` for asyncio: same arguments; ``async for chunk in astream(...)``; ``.result`` at the end."""
    return AsyncTextStream(stream(model, tokenizer, prompt, **kwargs))


# --- transformers' streamers, for generate(..., streamer=...) ------------------------------------------------------


def _is_cjk(codepoint: int) -> bool:
    return (
        0x4E00 <= codepoint <= 0x9FFF or 0x3400 <= codepoint <= 0x4DBF or 0x20000 <= codepoint <= 0x2A6DF
        or 0x2A700 <= codepoint <= 0x2B73F or 0x2B740 <= codepoint <= 0x2B81F or 0x2B820 <= codepoint <= 0x2CEAF
        or 0xF900 <= codepoint <= 0xFAFF or 0x2F800 <= codepoint <= 0x2FA1F
    )


class BaseStreamer:
    """What ``generate(..., streamer=...)`` calls: ``put(ids)`` with the prompt, then each step's new token(s), and
    ``end()`` once generation is over. Subclass it (or write any class with those two methods)."""

    def put(self, value: Any) -> None:
        raise NotImplementedError(f"{type(self).__name__} is a streamer without put(value): implement it.")

    def end(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} is a streamer without end(): implement it.")


def _prints_at_once(text: str) -> bool:
    """Letters (with their combining marks), digits and spaces can be shown as they come; anything else may be the
    start of something a later token completes (markup, an incomplete character), so it waits for a space."""
    return all(char.isspace() or unicodedata.category(char)[0] in "LMN" for char in text)


class TextStreamer(BaseStreamer):
    """transformers' ``TextStreamer``: prints text to stdout as ``generate`` produces it.

    Text is released in transformers 5's pieces: at a new line (the last token is kept as context, so the next
    line's leading space decodes as it should), at once for CJK characters and for runs of letters, digits and
    spaces, otherwise up to the last space. ``skip_prompt`` leaves out the prompt; other keyword arguments go to
    ``tokenizer.decode``. Batch size 1 only. Override ``on_finalized_text(text, stream_end=False)`` to send the text
    elsewhere.
    """

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, **decode_kwargs: Any) -> None:
        self.tokenizer = tokenizer
        self.skip_prompt = skip_prompt
        self.decode_kwargs = decode_kwargs
        self.token_cache: list[int] = []
        self.print_len = 0
        self.next_tokens_are_prompt = True

    def put(self, value: Any) -> None:
        if len(value.shape) > 1 and value.shape[0] > 1:
            raise ValueError(
                f"TextStreamer only supports batch size 1, found {value.shape[0]} rows: stream one prompt per "
                "generate call (num_return_sequences=1)."
            )
        if len(value.shape) > 1:
            value = value[0]
        if self.skip_prompt and self.next_tokens_are_prompt:
            self.next_tokens_are_prompt = False
            return
        self.token_cache.extend(value.tolist())
        text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
        pending = text[self.print_len:]
        if text.endswith("\n"):
            printable = pending
            self.token_cache = self.token_cache[-1:]
            self.print_len = len(self.tokenizer.decode(self.token_cache, **self.decode_kwargs))
        elif (text and _is_cjk(ord(text[-1]))) or _prints_at_once(pending):
            printable = pending
            self.print_len += len(printable)
        else:
            printable = text[self.print_len : text.rfind(" ") + 1]
            self.print_len += len(printable)
        self.on_finalized_text(printable)

    def end(self) -> None:
        if self.token_cache:
            text = self.tokenizer.decode(self.token_cache, **self.decode_kwargs)
            printable = text[self.print_len:]
            self.token_cache = []
            self.print_len = 0
        else:
            printable = ""
        self.next_tokens_are_prompt = True
        self.on_finalized_text(printable, stream_end=True)

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        print(text, flush=True, end="" if not stream_end else None)


class TextIteratorStreamer(TextStreamer):
    """transformers' ``TextIteratorStreamer``: run ``generate`` in a thread and iterate the text here.

    ``timeout`` (seconds) bounds each wait for the next piece (``queue.Empty`` when it passes).
    """

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any):
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        self.text_queue: Queue = Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.text_queue.put(text, timeout=self.timeout)
        if stream_end:
            self.text_queue.put(self.stop_signal, timeout=self.timeout)

    def __iter__(self) -> "TextIteratorStreamer":
        return self

    def __next__(self) -> str:
        value = self.text_queue.get(timeout=self.timeout)
        if value == self.stop_signal:
            raise StopIteration()
        return value


class AsyncTextIteratorStreamer(TextStreamer):
    """transformers' ``AsyncTextIteratorStreamer``: run ``generate`` in a thread and ``async for`` the text in the
    event loop. Create it inside a coroutine (it binds to the running loop). ``timeout`` (seconds) bounds each wait
    for the next piece (``TimeoutError`` when it passes)."""

    def __init__(self, tokenizer: Any, skip_prompt: bool = False, timeout: float | None = None, **decode_kwargs: Any):
        super().__init__(tokenizer, skip_prompt, **decode_kwargs)
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "AsyncTextIteratorStreamer must be created inside a coroutine (it hands text to the running event "
                "loop); use TextIteratorStreamer outside asyncio."
            ) from None
        self.text_queue: asyncio.Queue = asyncio.Queue()
        self.stop_signal = None
        self.timeout = timeout

    def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
        self.loop.call_soon_threadsafe(self.text_queue.put_nowait, text)
        if stream_end:
            self.loop.call_soon_threadsafe(self.text_queue.put_nowait, self.stop_signal)

    def __aiter__(self) -> "AsyncTextIteratorStreamer":
        return self

    async def __anext__(self) -> str:
        value = await asyncio.wait_for(self.text_queue.get(), self.timeout)
        if value == self.stop_signal:
            raise StopAsyncIteration()
        return value
