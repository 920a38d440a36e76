"""What the decoding loops (greedy/sampling in ``loop.py``, beam search) call to run the model.

A runner owns the model state of one ``generate`` call — the KV cache, and for an encoder-decoder the encoder
output, computed once — and feeds it tokens. Both kinds offer the same small interface, so every decoding
strategy is written once for decoder-only and encoder-decoder models:

    runner.rows                 sequences decoded together (batch x beams, or x num_return_sequences)
    runner.prompt               LongTensor (rows, L): the ids the logits processors see before the first new token
                                (the prompt for a decoder-only model, the decoder prompt for an encoder-decoder)
    runner.first_logits()       float32 (rows, vocab): logits of the first new token (prefill)
    runner.step(tokens)         append one token per row, (rows,), and return the next float32 logits
    runner.reorder(rows)        row i continues old row rows[i] (beam search keeps its best beams)

Rows are expanded (``expand``: each input repeated that many times, adjacent) before the cache is built; an
encoder runs on the unexpanded batch and its output is repeated, as transformers does.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from ..kv_cache import EncoderDecoderCache, StaticCache, positions_from_mask
from ..outputs import BaseModelOutput

_compiled: dict[str, Callable] = {}


def _forward_last_logits(model, **inputs) -> torch.Tensor:
    return model(**inputs, logits_to_keep=1).logits[:, -1].float()


def _maybe_compiled(compile: bool) -> Callable:
    if not compile:
        return _forward_last_logits
    step = _compiled.get("step")
    if step is None:
        step = _compiled["step"] = torch.compile(_forward_last_logits, dynamic=False)
    return step


class DecoderOnlyRunner:
    """A causal LM over a preallocated ``StaticCache`` of ``prompt length + max_new`` slots.

    Left padding is handled with the keep mask over cache slots and position ids counted from each row's first
    real token (transformers' rule), so a padded row decodes exactly as it would alone.
    """

    def __init__(
        self, model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new: int, *,
        expand: int = 1, compile: bool = False,
    ) -> None:
        if expand > 1:
            input_ids = input_ids.repeat_interleave(expand, dim=0)
            attention_mask = attention_mask.repeat_interleave(expand, dim=0)
        self.model = model
        self.prompt = input_ids
        self.rows, self.length = input_ids.shape
        total = self.length + max_new
        device = input_ids.device
        self.cache = StaticCache.for_model(model, self.rows, total)
        self.keep = torch.zeros(self.rows, total, dtype=torch.long, device=device)
        self.keep[:, : self.length] = attention_mask
        self.positions = positions_from_mask(attention_mask)
        self.next_position = self.positions[:, -1:] + 1
        self._forward = _maybe_compiled(compile)

    def first_logits(self) -> torch.Tensor:
        cache_position = torch.arange(self.length, device=self.prompt.device)
        with torch.no_grad():
            logits = _forward_last_logits(
                self.model, input_ids=self.prompt, attention_mask=self.keep, position_ids=self.positions,
                past_key_values=self.cache, cache_position=cache_position,
            )
        self.cache.seen_tokens = self.length
        return logits

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        slot = self.cache.seen_tokens
        self.keep[:, slot] = 1
        cache_position = torch.tensor([slot], device=tokens.device)
        with torch.no_grad():
            logits = self._forward(
                self.model, input_ids=tokens[:, None], attention_mask=self.keep, position_ids=self.next_position,
                past_key_values=self.cache, cache_position=cache_position,
            )
        self.cache.seen_tokens = slot + 1
        self.next_position = self.next_position + 1
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        self.keep.copy_(self.keep.index_select(0, rows))
        self.next_position = self.next_position.index_select(0, rows)

    @property
    def past_key_values(self) -> StaticCache:
        return self.cache


class EncoderDecoderRunner:
    """An encoder-decoder: the encoder runs once (or its output is given), the decoder over an
    ``EncoderDecoderCache`` whose self-attention part is static and whose cross-attention keys/values are
    computed by the first decoder call and reused by every step.

    ``encoder_inputs`` are the encoder's keyword arguments (``input_ids``/``attention_mask``/``inputs_embeds``, or
    ``input_features`` for speech); an ``encoder_outputs`` entry skips the encoder. ``attention_mask``, when given,
    also masks the cross-attention over padded encoder positions. ``decoder_attention_mask`` (rows of the decoder
    prompt, 0 = padding) masks padded decoder prompt tokens for every later step, as transformers extends it.

    ``encoder_outputs`` (the unexpanded encoder output, hidden states and attentions included when asked for) is
    kept for the generate output; the decoder reads the expanded ``last_hidden_state``.
    """

    def __init__(
        self, model, encoder_inputs: dict[str, Any], decoder_input_ids: torch.Tensor, max_new: int, *,
        expand: int = 1, compile: bool = False, decoder_attention_mask: torch.Tensor | None = None,
    ) -> None:
        encoder_inputs = {k: v for k, v in encoder_inputs.items() if v is not None}
        encoder_outputs = encoder_inputs.pop("encoder_outputs", None)
        self.encoder_attention_mask = encoder_inputs.get("attention_mask")
        if encoder_outputs is None:
            with torch.no_grad():
                encoder_outputs = model.get_encoder()(**encoder_inputs)
        if not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = as_encoder_output(encoder_outputs)
        self.encoder_outputs = encoder_outputs
        hidden = encoder_outputs.last_hidden_state
        if expand > 1:
            hidden = hidden.repeat_interleave(expand, dim=0)
            decoder_input_ids = decoder_input_ids.repeat_interleave(expand, dim=0)
            if self.encoder_attention_mask is not None:
                self.encoder_attention_mask = self.encoder_attention_mask.repeat_interleave(expand, dim=0)
            if decoder_attention_mask is not None:
                decoder_attention_mask = decoder_attention_mask.repeat_interleave(expand, dim=0)
        self._decoder_view = BaseModelOutput(last_hidden_state=hidden)
        self.model = model
        self.prompt = decoder_input_ids
        self.rows, self.length = decoder_input_ids.shape
        total = self.length + max_new
        self.cache = EncoderDecoderCache.for_model(model, self.rows, total)
        self.keep = None
        if decoder_attention_mask is not None and not bool(decoder_attention_mask.all()):
            self.keep = torch.ones(self.rows, total, dtype=torch.long, device=decoder_input_ids.device)
            self.keep[:, : self.length] = decoder_attention_mask
        self._step = _maybe_compiled(compile)

    def _decode(self, step: Callable, tokens: torch.Tensor, cache_position: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return step(
                self.model, encoder_outputs=self._decoder_view, attention_mask=self.encoder_attention_mask,
                decoder_input_ids=tokens, decoder_attention_mask=self.keep, past_key_values=self.cache,
                cache_position=cache_position, use_cache=True,
            )

    def first_logits(self) -> torch.Tensor:
        cache_position = torch.arange(self.length, device=self.prompt.device)
        logits = self._decode(_forward_last_logits, self.prompt, cache_position)
        self.cache.seen_tokens = self.length
        return logits

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        slot = self.cache.seen_tokens
        logits = self._decode(self._step, tokens[:, None], torch.tensor([slot], device=tokens.device))
        self.cache.seen_tokens = slot + 1
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        if self.keep is not None:
            self.keep.copy_(self.keep.index_select(0, rows))

    @property
    def past_key_values(self) -> EncoderDecoderCache:
        return self.cache


def as_encoder_output(encoder_outputs: Any) -> BaseModelOutput:
    """A hugkit ``BaseModelOutput`` from what a caller may pass as ``encoder_outputs``: one already, any object with
    ``last_hidden_state`` (transformers' outputs), a dict with that key, or a tuple ``(last_hidden_state, hidden_states,
    attentions)``."""
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    if isinstance(encoder_outputs, dict) and "last_hidden_state" in encoder_outputs:
        get = encoder_outputs.get
        return BaseModelOutput(get("last_hidden_state"), get("hidden_states"), get("attentions"))
    if hasattr(encoder_outputs, "last_hidden_state"):
        get = lambda name: getattr(encoder_outputs, name, None)  # noqa: E731
        return BaseModelOutput(get("last_hidden_state"), get("hidden_states"), get("attentions"))
    if isinstance(encoder_outputs, (tuple, list)) and encoder_outputs and isinstance(encoder_outputs[0], torch.Tensor):
        return BaseModelOutput(*tuple(encoder_outputs)[:3])
    raise TypeError(
        "encoder_outputs should be the encoder's output (a BaseModelOutput, or a tuple starting with the last hidden "
        f"state of shape (batch, length, hidden)), found {type(encoder_outputs).__name__}. Get it from "
        "model.get_encoder()(input_ids=..., attention_mask=...)."
    )
