"""Encoder-decoder machinery, written once: the encoder and decoder loops, the decoder cache argument, the base
model's ``run`` (encoder once, decoder over its output), the standard shift-right, and the ``lm_head`` +
``final_logits_bias`` head of BART and its kin.

Why a module of its own, here beside ``layers.py`` and ``task_heads.py``: this is no architecture's own code (it
sat in mbart.py at first, a second job in that file), ``hugkit/models/`` holds one file per architecture, and like
``layers.py`` it holds only what several model files need. Who uses what:

- ``EncoderStack`` / ``DecoderStack``: BART, mBART, Marian, Pegasus (each adds its embeddings and layers, and mBART
  and Pegasus a final ``layer_norm``); Whisper's audio encoder and its decoder run the same layer loops
  (``run_encoder_layers``, ``run_decoder_layers``) after their own inputs. T5's stack is its own (relative position
  bias, a block list, transformers' T5 cache rules).
- ``EncoderDecoderModel``: BART, mBART, Marian, Pegasus, T5 (``get_encoder``/``get_decoder``/``kv_cache_shape``,
  and ``run`` with a one-method hook, ``default_decoder_input_ids``, for the architecture's rule when no decoder
  inputs are passed); Whisper, whose encoder reads audio, takes ``EncoderDecoderParts`` (the accessors) only.
- ``Seq2SeqLMWithLogitsBias``: the conditional-generation heads of BART, mBART, Marian and Pegasus (the Seq2SeqLM
  task with ``lm_head`` + ``final_logits_bias``).
- ``shift_tokens_right``: teacher forcing for BART, Marian, Pegasus, T5 and Whisper (mBART has its own rule).

An architecture's embeddings, layers and shift rule stay in its model file.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .kv_cache import DynamicCache, EncoderDecoderCache, StaticCache, causal_mask, decoder_inputs
from .layers import check_inputs, padding_mask
from .outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions, Seq2SeqModelOutput
from .task_heads import Seq2SeqLM, resolve_cache


def shift_tokens_right(
    input_ids: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int | None
) -> torch.Tensor:
    """Decoder inputs for teacher forcing: ``input_ids`` (labels) one step right behind ``decoder_start_token_id``;
    -100 becomes pad. transformers' rule for BART, Marian, Pegasus, T5 (``_shift_right``) and Whisper."""
    if pad_token_id is None or decoder_start_token_id is None:
        raise ValueError(
            "config.pad_token_id and config.decoder_start_token_id must be set to build decoder_input_ids by "
            f"shifting ids right (found {pad_token_id} and {decoder_start_token_id}); set them in config.json or "
            "pass decoder_input_ids."
        )
    shifted = input_ids.new_zeros(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


def decoder_cache(past_key_values: Any, use_cache: bool) -> EncoderDecoderCache | None:
    """The decoder's cache: the one given (a bare self-attention cache is wrapped in an ``EncoderDecoderCache``), a
    new dynamic one for ``use_cache``, or None."""
    if past_key_values is None:
        return EncoderDecoderCache() if use_cache else None
    if isinstance(past_key_values, (StaticCache, DynamicCache)):
        return EncoderDecoderCache(past_key_values)
    if not isinstance(past_key_values, EncoderDecoderCache):
        raise TypeError(
            "An encoder-decoder's past_key_values should be a hugkit.kv_cache.EncoderDecoderCache (self-attention "
            f"cache plus cross-attention keys/values), found {type(past_key_values).__name__}. Build one with "
            "EncoderDecoderCache.for_model(model, batch_size, max_cache_len), or pass use_cache=True."
        )
    return past_key_values


def _as_tuple(items: list | None) -> tuple | None:
    return tuple(items) if items is not None else None


# --- the layer loops -------------------------------------------------------------------------------------------
# ``hidden_states`` holds the first layer's input, then each layer's output, the last one after ``final_norm``
# (transformers' rule).


def run_encoder_layers(
    layers: nn.ModuleList,
    hidden: torch.Tensor,
    mask: torch.Tensor | None,
    output_attentions: bool,
    output_hidden_states: bool,
    final_norm,
) -> BaseModelOutput:
    """Encoder layers (each called ``layer(hidden, mask, output_attentions)``), then ``final_norm``."""
    all_hidden = [hidden] if output_hidden_states else None
    all_attentions = [] if output_attentions else None
    for layer in layers:
        hidden, probs = layer(hidden, mask, output_attentions)
        if all_hidden is not None:
            all_hidden.append(hidden)
        if all_attentions is not None:
            all_attentions.append(probs)
    hidden = final_norm(hidden)
    if all_hidden is not None:
        all_hidden[-1] = hidden
    return BaseModelOutput(
        last_hidden_state=hidden, hidden_states=_as_tuple(all_hidden), attentions=_as_tuple(all_attentions)
    )


def run_decoder_layers(
    layers: nn.ModuleList,
    hidden: torch.Tensor,
    self_mask: torch.Tensor | None,
    encoder_hidden_states: torch.Tensor,
    encoder_mask: torch.Tensor | None,
    output_attentions: bool,
    output_hidden_states: bool,
    final_norm,
    cache: EncoderDecoderCache | None,
    cache_position: torch.Tensor | None,
    last_layer_query_index: torch.Tensor | None = None,
) -> BaseModelOutputWithPastAndCrossAttentions:
    """Decoder layers (each called ``layer(hidden, self_mask, encoder_hidden_states, encoder_mask,
    output_attentions, cache=, cache_position=)``), then ``final_norm``. ``last_layer_query_index`` (BART's
    sequence classification): the last layer computes one position per row, ``query_index=`` (batch, 1, d_model)."""
    all_hidden = [hidden] if output_hidden_states else None
    self_attentions = [] if output_attentions else None
    cross_attentions = [] if output_attentions else None
    last = len(layers) - 1
    for index, layer in enumerate(layers):
        query = {} if last_layer_query_index is None or index != last else {"query_index": last_layer_query_index}
        hidden, self_probs, cross_probs = layer(
            hidden, self_mask, encoder_hidden_states, encoder_mask, output_attentions,
            cache=cache, cache_position=cache_position, **query,
        )
        if all_hidden is not None:
            all_hidden.append(hidden)
        if output_attentions:
            self_attentions.append(self_probs)
            cross_attentions.append(cross_probs)
    hidden = final_norm(hidden)
    if all_hidden is not None:
        all_hidden[-1] = hidden
    return BaseModelOutputWithPastAndCrossAttentions(
        last_hidden_state=hidden, past_key_values=cache, hidden_states=_as_tuple(all_hidden),
        attentions=_as_tuple(self_attentions), cross_attentions=_as_tuple(cross_attentions),
    )


class _Stack(nn.Module):
    """What the encoder and the decoder hold besides their embeddings: the layers, dropout, the limits of the inputs.
    A ``layer_norm`` the architecture sets (mBART, Pegasus) runs after the last layer."""

    def __init__(self, config: Any, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = config.dropout
        self.max_length = config.max_position_embeddings
        self.hidden_size = config.d_model
        self.output_attentions = config.output_attentions
        self.output_hidden_states = config.output_hidden_states

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        norm = getattr(self, "layer_norm", None)
        return hidden_states if norm is None else norm(hidden_states)


class EncoderStack(_Stack):
    """checked inputs -> ``embed`` (the architecture's: token embeddings, positions, any LayerNorm) -> dropout ->
    layers -> ``final_norm``."""

    def embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutput | tuple:
        """transformers' encoder call (``model.get_encoder()(...)``): keywords, flags defaulting to the config."""
        output_attentions = self.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.output_hidden_states if output_hidden_states is None else output_hidden_states
        check_inputs(input_ids, inputs_embeds, attention_mask, max_length=self.max_length, hidden_size=self.hidden_size)
        hidden = F.dropout(self.embed(input_ids, inputs_embeds), self.dropout, self.training)
        out = run_encoder_layers(
            self.layers, hidden, padding_mask(attention_mask, hidden.dtype), output_attentions, output_hidden_states,
            self.final_norm,
        )
        return out if return_dict else out.to_tuple()


class DecoderStack(_Stack):
    """``embed`` at the new tokens' positions -> dropout -> layers (causal self-attention over the cache,
    cross-attention over the encoder output) -> ``final_norm``.

    ``past_key_values``: an ``EncoderDecoderCache`` (static or dynamic self-attention part; a bare one is wrapped),
    or None for a plain forward; ``use_cache`` without one starts a dynamic cache and returns it. The new tokens sit
    at cache slots ``cache_position`` (None: right after those cached), which are also their positions (padding
    does not shift them). ``attention_mask`` covers past and new tokens (transformers' convention)."""

    def embed(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, positions: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        past_key_values: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool = False,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        cache_position: torch.Tensor | None = None,
        last_layer_query_index: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        """transformers' decoder call (``model.get_decoder()(...)``, its argument order; ``cache`` is transformers
        5's name for ``past_key_values``). ``last_layer_query_index`` (one position per row; no cache): see
        ``run_decoder_layers``."""
        past_key_values = resolve_cache(past_key_values, cache)
        output_attentions = self.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.output_hidden_states if output_hidden_states is None else output_hidden_states
        batch, length = check_inputs(
            input_ids, inputs_embeds, None, max_length=self.max_length, hidden_size=self.hidden_size
        )
        if encoder_hidden_states is None:
            raise ValueError(
                "The decoder cross-attends to the encoder output: pass encoder_hidden_states "
                "(model.get_encoder()(input_ids=..., attention_mask=...).last_hidden_state)."
            )
        cache = decoder_cache(past_key_values, use_cache)
        if cache is not None and last_layer_query_index is not None:
            raise ValueError("decoder_query_index (sequence classification) does not combine with a decoder cache.")
        if attention_mask is not None and (
            attention_mask.dim() != 2 or attention_mask.shape[0] != batch
            or (cache is None and attention_mask.shape[1] != length)
        ):
            raise ValueError(
                f"decoder_attention_mask should have shape (batch_size, past + new tokens) with batch_size {batch} "
                f"(without a cache: (batch_size, {length})), found {tuple(attention_mask.shape)}."
            )
        if cache_position is None and cache is not None:  # a host-side check: F.embedding would fail less clearly
            end = cache.get_seq_length() + length
            if end > self.max_length:
                raise ValueError(
                    f"The decoder would reach position {end}, but this model has {self.max_length} positions "
                    "(max_position_embeddings). Decode fewer tokens."
                )
        device = (input_ids if input_ids is not None else inputs_embeds).device
        cache_position, _, keep, kv_length = decoder_inputs(cache, attention_mask, None, cache_position, length, device)
        hidden = F.dropout(self.embed(input_ids, inputs_embeds, cache_position), self.dropout, self.training)
        out = run_decoder_layers(
            self.layers, hidden, causal_mask(keep, cache_position, kv_length, hidden.dtype), encoder_hidden_states,
            padding_mask(encoder_attention_mask, hidden.dtype), output_attentions, output_hidden_states,
            self.final_norm, cache, cache_position, last_layer_query_index,
        )
        return out if return_dict else out.to_tuple()


# --- the model classes -----------------------------------------------------------------------------------------


class EncoderDecoderParts:
    """What generation asks of an encoder-decoder, on the base model and its heads alike (mixed into the
    architecture's PreTrainedModel)."""

    def get_encoder(self) -> nn.Module:
        return self.base_model.encoder

    def get_decoder(self) -> nn.Module:
        return self.base_model.decoder

    def kv_cache_shape(self) -> tuple[int, int | list[int], int]:
        """(decoder layers, self-attention heads, head size): what the decoder's static cache holds. The head
        count is a per-layer list when head pruning left layers with different counts."""
        attentions = [layer.self_attn for layer in self.base_model.decoder.layers]
        heads = [a.num_heads for a in attentions]
        return len(heads), heads[0] if len(set(heads)) == 1 else heads, attentions[0].head_dim


class EncoderDecoderModel(EncoderDecoderParts):
    """``EncoderDecoderParts`` plus ``run``, what the Seq2Seq task classes call on the base model: the encoder
    (unless ``encoder_outputs`` are given), then the decoder over its output, as a ``Seq2SeqModelOutput``.

    The one step that differs between architectures is a hook: ``default_decoder_input_ids(input_ids)``, the
    decoder inputs when none are passed. By default there are none (Marian, Pegasus, T5: an error says what to
    pass); BART and mBART, pre-trained as denoisers, shift ``input_ids`` right by their rule.
    """

    def default_decoder_input_ids(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        raise ValueError(
            f"{type(self).__name__} needs decoder inputs: pass decoder_input_ids (starting with "
            f"config.decoder_start_token_id = {self.config.decoder_start_token_id}) or decoder_inputs_embeds; the "
            "conditional-generation head also builds them from labels (shifted right), and generate() starts them."
        )

    def run(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_attention_mask: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | None,
        inputs_embeds: torch.Tensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        past_key_values: EncoderDecoderCache | None = None,
        use_cache: bool = False,
        cache_position: torch.Tensor | None = None,
        decoder_query_index: torch.Tensor | None = None,
    ) -> Seq2SeqModelOutput:
        """``past_key_values``/``use_cache``/``cache_position``: see ``DecoderStack``; the cache comes back in
        ``past_key_values``. ``decoder_query_index``: the last decoder layer computes only that position of each
        row (last_hidden_state is then (batch, 1, d_model)); BART's sequence classification passes it."""
        base = self.base_model
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            decoder_input_ids = base.default_decoder_input_ids(input_ids)
        if encoder_outputs is None:
            encoder_outputs = base.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
            )
        encoder_outputs = as_encoder_output(encoder_outputs)
        query = {} if decoder_query_index is None else {"last_layer_query_index": decoder_query_index}
        decoded = base.decoder(
            input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state, encoder_attention_mask=attention_mask,
            inputs_embeds=decoder_inputs_embeds, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, past_key_values=past_key_values, use_cache=use_cache,
            cache_position=cache_position, return_dict=True, **query,
        )
        return seq2seq_output(encoder_outputs, decoded)


def as_encoder_output(encoder_outputs: BaseModelOutput | tuple) -> BaseModelOutput:
    """``encoder_outputs`` as passed to a model: a ``BaseModelOutput``, or its tuple (last_hidden_state, ...)."""
    if isinstance(encoder_outputs, BaseModelOutput):
        return encoder_outputs
    return BaseModelOutput(*tuple(encoder_outputs)[:3])


def seq2seq_output(
    encoder_outputs: BaseModelOutput, decoded: BaseModelOutputWithPastAndCrossAttentions
) -> Seq2SeqModelOutput:
    """A base model's output: the decoder's (prefixed ``decoder_``, the cache and cross-attentions as they are),
    then the encoder's (prefixed ``encoder_``)."""
    return Seq2SeqModelOutput(
        last_hidden_state=decoded.last_hidden_state,
        past_key_values=decoded.past_key_values,
        decoder_hidden_states=decoded.hidden_states,
        decoder_attentions=decoded.attentions,
        cross_attentions=decoded.cross_attentions,
        encoder_last_hidden_state=encoder_outputs.last_hidden_state,
        encoder_hidden_states=encoder_outputs.hidden_states,
        encoder_attentions=encoder_outputs.attentions,
    )


def shared_embedding_ties(prefix: str = "") -> dict[str, str]:
    """Encoder and decoder read the ``shared`` token embeddings (checkpoints may store all three, identical):
    ``_tied_weights_keys`` entries for a model whose base model sits at ``prefix`` ("" or "model.")."""
    return {
        f"{prefix}encoder.embed_tokens.weight": f"{prefix}shared.weight",
        f"{prefix}decoder.embed_tokens.weight": f"{prefix}shared.weight",
    }


class Seq2SeqLMWithLogitsBias(Seq2SeqLM):
    """The Seq2SeqLM task with the head of BART, mBART, Marian and Pegasus: ``lm_head`` (tied to the shared
    embeddings) plus the ``final_logits_bias`` buffer (fairseq's), and transformers' shift-right of the labels.
    The model's ``__init__`` calls ``_build_lm_head(config, vocab_size)`` after building its base model."""

    has_learned_positions = True  # the decoder's position table (learned or sinusoidal) has a fixed size
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight", **shared_embedding_ties("model.")}
    # Some checkpoints were saved without the (all-zero) bias: it then starts at zero, as in transformers.
    _keys_to_ignore_on_load_missing = [r"^final_logits_bias$"]

    def _build_lm_head(self, config: Any, vocab_size: int) -> None:
        self.register_buffer("final_logits_bias", torch.zeros((1, vocab_size)))
        self.lm_head = nn.Linear(config.d_model, vocab_size, bias=False)

    def _init_buffers(self, device: torch.device) -> None:
        if self.final_logits_bias.is_meta:  # not in the checkpoint
            self.final_logits_bias = torch.zeros(self.final_logits_bias.shape, device=device, dtype=self.dtype)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def head(self, decoded: Seq2SeqModelOutput) -> torch.Tensor:
        return self.lm_head(decoded.last_hidden_state) + self.final_logits_bias
