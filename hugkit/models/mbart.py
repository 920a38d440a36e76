"""mBART: a pre-norm Transformer encoder-decoder (facebook/mbart-large-50 and its fine-tunes), with transformers'
module names so checkpoints load as they are.

Reads top to bottom: config, mBART's shift-right, pre-norm encoder and decoder layers (over bart.BartAttention,
which also serves the decoder cache), the encoder and decoder loops, mBART's embeddings (BART's learned positions
and scaled token embeddings), base model, conditional-generation head.

Marian and Pegasus are built from the same pieces, as in transformers: they import the encoder/decoder loops
(``EncoderStack``, ``DecoderStack``) and the encoder-decoder plumbing (``run_encoder_decoder``,
``EncoderDecoderParts``); Pegasus also the pre-norm layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..kv_cache import DynamicCache, EncoderDecoderCache, StaticCache, causal_mask, decoder_inputs
from ..layers import check_inputs, get_activation, padding_mask
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, BaseModelOutputWithPast, Seq2SeqModelOutput
from ..task_heads import Seq2SeqLM, Seq2SeqModel
from .bart import (
    BartAttention,
    BartLearnedPositionalEmbedding,
    BartScaledWordEmbedding,
    _embedding_scale,
    _feed_forward,
)


class MBartConfig(PretrainedConfig):
    model_type = "mbart"
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults = {
        "vocab_size": 50265,
        "max_position_embeddings": 1024,
        "encoder_layers": 12,
        "encoder_ffn_dim": 4096,
        "encoder_attention_heads": 16,
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
        "decoder_attention_heads": 16,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "activation_function": "gelu",
        "d_model": 1024,
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "classifier_dropout": 0.0,
        "scale_embedding": False,
        "use_cache": True,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "is_encoder_decoder": True,
        # None: generation starts from bos; mbart-large-50 checkpoints set 2 (</s>) and force the target
        # language code as the first token with forced_bos_token_id (generation config).
        "decoder_start_token_id": None,
        "forced_eos_token_id": 2,
        "tie_word_embeddings": True,
    }


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """mBART's decoder inputs from target ids: shifted one step right, with each row's last non-pad token (the
    language code that ends an mBART target, or </s>) wrapped round to position 0; -100 becomes pad.

    Like transformers, rows are taken to be right-padded (the last non-pad token sits at ``count - 1``).
    """
    if pad_token_id is None:
        raise ValueError(
            "config.pad_token_id must be set to build mBART decoder_input_ids from labels or input_ids (found None); "
            "set it in config.json or pass decoder_input_ids."
        )
    tokens = input_ids.masked_fill(input_ids == -100, pad_token_id)
    last = tokens.ne(pad_token_id).sum(dim=1) - 1
    if bool((last < 0).any()):
        rows = (last < 0).nonzero().flatten().tolist()
        raise ValueError(
            f"Rows {rows} are all padding (or -100), so they have no last token to start the decoder with. "
            "Drop empty rows, or pass decoder_input_ids."
        )
    start = tokens.gather(1, last.unsqueeze(-1))
    return torch.cat([start, tokens[:, :-1]], dim=1)


def _clamp_fp16(hidden_states: torch.Tensor) -> torch.Tensor:
    """mBART and Pegasus clamp every fp16 encoder layer output to stay finite (BART only when it overflowed)."""
    if hidden_states.dtype != torch.float16:
        return hidden_states
    limit = torch.finfo(hidden_states.dtype).max - 1000
    return hidden_states.clamp(-limit, limit)


class MBartEncoderLayer(nn.Module):
    """Pre-norm: LayerNorm, attention, add; LayerNorm, feed-forward, add."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.embed_dim = config.d_model
        self.self_attn = BartAttention(config.d_model, config.encoder_attention_heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.activation_fn = get_activation(config.activation_function)
        self.fc1 = nn.Linear(config.d_model, config.encoder_ffn_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.self_attn(self.self_attn_layer_norm(hidden_states), mask, output_attentions)
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        hidden_states = hidden_states + _feed_forward(self, self.final_layer_norm(hidden_states))
        return _clamp_fp16(hidden_states), probs


class MBartDecoderLayer(nn.Module):
    """Pre-norm: causal self-attention, cross-attention over the encoder output, feed-forward (each after a
    LayerNorm, each added to its input)."""

    def __init__(self, config: PretrainedConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.embed_dim = config.d_model
        heads, dropout = config.decoder_attention_heads, config.attention_dropout
        self.self_attn = BartAttention(config.d_model, heads, dropout, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = BartAttention(config.d_model, heads, dropout, layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.activation_fn = get_activation(config.activation_function)
        self.fc1 = nn.Linear(config.d_model, config.decoder_ffn_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_dim, config.d_model)
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout
        self.activation_dropout = config.activation_dropout

    def forward(
        self,
        hidden_states: torch.Tensor,
        self_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_mask: torch.Tensor | None,
        output_attentions: bool,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attended, self_probs = self.self_attn(
            self.self_attn_layer_norm(hidden_states), self_mask, output_attentions,
            cache=cache, cache_position=cache_position,
        )
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        attended, cross_probs = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states), encoder_mask, output_attentions, encoder_hidden_states,
            cache=cache,
        )
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        hidden_states = hidden_states + _feed_forward(self, self.final_layer_norm(hidden_states))
        return hidden_states, self_probs, cross_probs


# --- the encoder and decoder loops (shared with Marian and Pegasus) ---------------------------------------------


@dataclass
class DecoderOutput(BaseModelOutputWithPast):
    """last_hidden_state, past_key_values, hidden_states, attentions, cross_attentions (transformers'
    BaseModelOutputWithPastAndCrossAttentions): what ``get_decoder()(...)`` returns."""

    cross_attentions: Optional[tuple] = None


def _as_tuple(items: list | None) -> tuple | None:
    return tuple(items) if items is not None else None


class EncoderStack(nn.Module):
    """What every encoder here runs: checked inputs -> ``embed`` (the architecture's: token embeddings, positions,
    any LayerNorm) -> dropout -> layers -> ``final_norm`` (identity unless the architecture has one).

    ``hidden_states`` holds the first layer's input, then each layer's output, the last one after ``final_norm``
    (transformers' rule)."""

    def __init__(self, config: PretrainedConfig, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = config.dropout
        self.max_length = config.max_position_embeddings
        self.hidden_size = config.d_model
        self.output_attentions = config.output_attentions
        self.output_hidden_states = config.output_hidden_states

    def embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states

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
        mask = padding_mask(attention_mask, hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden, probs = layer(hidden, mask, output_attentions)
            if all_hidden is not None:
                all_hidden.append(hidden)
            if all_attentions is not None:
                all_attentions.append(probs)
        hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden[-1] = hidden
        out = BaseModelOutput(
            last_hidden_state=hidden, hidden_states=_as_tuple(all_hidden), attentions=_as_tuple(all_attentions)
        )
        return out if return_dict else out.to_tuple()


class DecoderStack(nn.Module):
    """What every decoder here runs: ``embed`` at the new tokens' positions -> dropout -> layers (causal
    self-attention over the cache, cross-attention over the encoder output) -> ``final_norm``.

    ``past_key_values``: an ``EncoderDecoderCache`` (static or dynamic self-attention part), or None for a plain
    forward; ``use_cache`` without one starts a dynamic cache and returns it. The new tokens sit at cache slots
    ``cache_position`` (None: right after those cached), which are also their positions. ``attention_mask`` covers
    past and new tokens (transformers' convention)."""

    def __init__(self, config: PretrainedConfig, layers: list[nn.Module]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.dropout = config.dropout
        self.max_length = config.max_position_embeddings
        self.hidden_size = config.d_model

    def embed(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, positions: torch.Tensor
    ) -> torch.Tensor:
        raise NotImplementedError

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        past_key_values: EncoderDecoderCache | None = None,
        use_cache: bool = False,
        cache_position: torch.Tensor | None = None,
    ) -> DecoderOutput:
        batch, length = check_inputs(
            input_ids, inputs_embeds, None, max_length=self.max_length, hidden_size=self.hidden_size
        )
        if encoder_hidden_states is None:
            raise ValueError(
                "The decoder cross-attends to the encoder output: pass encoder_hidden_states "
                "(model.get_encoder()(input_ids=..., attention_mask=...).last_hidden_state)."
            )
        cache = _check_cache(past_key_values, use_cache)
        if attention_mask is not None and (attention_mask.dim() != 2 or attention_mask.shape[0] != batch):
            raise ValueError(
                f"decoder_attention_mask should have shape (batch_size, past + new tokens) with batch_size {batch}, "
                f"found {tuple(attention_mask.shape)}."
            )
        if cache_position is None and cache is not None:
            past = cache.get_seq_length()
            if past + length > self.max_length:
                raise ValueError(
                    f"The decoder would reach position {past + length - 1}, but this model has "
                    f"{self.max_length} positions (max_position_embeddings). Decode fewer tokens."
                )
        device = (input_ids if input_ids is not None else inputs_embeds).device
        cache_position, _, keep, kv_length = decoder_inputs(cache, attention_mask, None, cache_position, length, device)
        hidden = F.dropout(self.embed(input_ids, inputs_embeds, cache_position), self.dropout, self.training)
        self_mask = causal_mask(keep, cache_position, kv_length, hidden.dtype)
        encoder_mask = padding_mask(encoder_attention_mask, hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        self_attentions = [] if output_attentions else None
        cross_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden, self_probs, cross_probs = layer(
                hidden, self_mask, encoder_hidden_states, encoder_mask, output_attentions,
                cache=cache, cache_position=cache_position,
            )
            if all_hidden is not None:
                all_hidden.append(hidden)
            if output_attentions:
                self_attentions.append(self_probs)
                cross_attentions.append(cross_probs)
        hidden = self.final_norm(hidden)
        if all_hidden is not None:
            all_hidden[-1] = hidden
        return DecoderOutput(
            last_hidden_state=hidden, past_key_values=cache, hidden_states=_as_tuple(all_hidden),
            attentions=_as_tuple(self_attentions), cross_attentions=_as_tuple(cross_attentions),
        )


def _check_cache(past_key_values: Any, use_cache: bool) -> EncoderDecoderCache | None:
    """The decoder's cache: the one given (a bare self-attention cache is wrapped, as bart.BartModel does), a new
    dynamic one for ``use_cache``, or None."""
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


def run_encoder_decoder(
    model: nn.Module,
    input_ids: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    decoder_input_ids: torch.Tensor | None,
    decoder_attention_mask: torch.Tensor | None,
    encoder_outputs: BaseModelOutput | tuple | None,
    inputs_embeds: torch.Tensor | None,
    decoder_inputs_embeds: torch.Tensor | None,
    output_hidden_states: bool,
    output_attentions: bool,
    past_key_values: EncoderDecoderCache | None,
    use_cache: bool,
    cache_position: torch.Tensor | None,
) -> Seq2SeqModelOutput:
    """A base model's ``run`` once its decoder inputs are settled: the encoder (unless ``encoder_outputs`` are
    given), then the decoder over the encoder output."""
    if encoder_outputs is None:
        encoder_outputs = model.encoder(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states,
        )
    elif not isinstance(encoder_outputs, BaseModelOutput):
        encoder_outputs = BaseModelOutput(*tuple(encoder_outputs)[:3])
    decoded = model.decoder(
        input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
        encoder_hidden_states=encoder_outputs.last_hidden_state, encoder_attention_mask=attention_mask,
        inputs_embeds=decoder_inputs_embeds, output_hidden_states=output_hidden_states,
        output_attentions=output_attentions, past_key_values=past_key_values, use_cache=use_cache,
        cache_position=cache_position,
    )
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


class EncoderDecoderParts:
    """What generation asks of an encoder-decoder, on the base model and its heads alike."""

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


# --- mBART's encoder, decoder, base model and head ---------------------------------------------------------------


class _MBartEmbeddings:
    """Scaled token embeddings (in the embedding module) + learned positions (BART's table: position ``p`` reads
    row ``p + 2``), then ``layernorm_embedding``; ``layer_norm`` after the last layer."""

    def _build_embeddings(self, config: MBartConfig) -> None:
        self.embed_tokens = BartScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config)
        )
        self.embed_positions = BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.layer_norm = nn.LayerNorm(config.d_model)

    def _embed(self, input_ids, inputs_embeds, positions=None) -> torch.Tensor:
        """``positions`` (1-D): the tokens' positions; None: 0, 1, 2, ..."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        return self.layernorm_embedding(inputs_embeds + self.embed_positions(inputs_embeds.shape[1], positions))

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden_states)


class MBartEncoder(_MBartEmbeddings, EncoderStack):
    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config, [MBartEncoderLayer(config) for _ in range(config.encoder_layers)])
        self._build_embeddings(config)

    def embed(self, input_ids, inputs_embeds) -> torch.Tensor:
        return self._embed(input_ids, inputs_embeds)


class MBartDecoder(_MBartEmbeddings, DecoderStack):
    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config, [MBartDecoderLayer(config, i) for i in range(config.decoder_layers)])
        self._build_embeddings(config)

    def embed(self, input_ids, inputs_embeds, positions) -> torch.Tensor:
        return self._embed(input_ids, inputs_embeds, positions)


class MBartPreTrainedModel(EncoderDecoderParts, PreTrainedModel):
    config_class = MBartConfig
    base_model_prefix = "model"
    # fairseq conversions carry encoder.version / decoder.version markers; they hold no weights.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"(^|\.)(encoder|decoder)\.version$"]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared


class MBartModel(Seq2SeqModel, MBartPreTrainedModel):
    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config)
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config))
        self.encoder = MBartEncoder(config)
        self.decoder = MBartDecoder(config)
        self.tie_weights()

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
    ) -> Seq2SeqModelOutput:
        """Encoder then decoder; without decoder inputs they are ``input_ids`` shifted right (mBART's rule)."""
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "mBART needs decoder inputs: pass decoder_input_ids or decoder_inputs_embeds, or input_ids "
                    "(decoder_input_ids are then input_ids shifted right, their last token wrapped to the front)."
                )
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id)
        return run_encoder_decoder(
            self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
            inputs_embeds, decoder_inputs_embeds, output_hidden_states, output_attentions,
            past_key_values, use_cache, cache_position,
        )


class MBartForConditionalGeneration(Seq2SeqLM, MBartPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``.

    Translation with mbart-large-50 fine-tunes starts the decoder at ``decoder_start_token_id`` (</s>) and forces
    the target language code as the first generated token: ``forced_bos_token_id``, read from the checkpoint's
    config or generation config (or passed to ``generate``)."""

    has_learned_positions = True  # the decoder cannot go past max_position_embeddings
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight", **{
        f"model.{k}": f"model.{v}" for k, v in MBartModel._tied_weights_keys.items()
    }}
    # Some checkpoints were saved without the (all-zero) bias: it then starts at zero, as in transformers.
    _keys_to_ignore_on_load_missing = [r"^final_logits_bias$"]

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config)
        self.model = MBartModel(config)
        self.register_buffer("final_logits_bias", torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.tie_weights()

    def _init_buffers(self, device: torch.device) -> None:
        if self.final_logits_bias.is_meta:  # not in the checkpoint
            self.final_logits_bias = torch.zeros(self.final_logits_bias.shape, device=device, dtype=self.dtype)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id)

    def head(self, decoded: Seq2SeqModelOutput) -> torch.Tensor:
        return self.lm_head(decoded.last_hidden_state) + self.final_logits_bias
