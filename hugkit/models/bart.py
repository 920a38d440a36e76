"""BART: a post-norm Transformer encoder-decoder, with transformers' module names so checkpoints load as they are.

Reads top to bottom: config, embeddings, attention, encoder and decoder layers, encoder, decoder, base model,
task heads (eos-pooled sequence classification, conditional generation logits).

The decoder takes a cache (``past_key_values``: an ``EncoderDecoderCache``, static or dynamic self-attention) and
``cache_position``; the cross-attention keys and values of the encoder output are computed once per cache.
``generate`` comes from the Seq2SeqLM task (``hugkit.generation``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..kv_cache import DynamicCache, EncoderDecoderCache, StaticCache, causal_mask, decoder_inputs
from ..layers import attention, check_inputs, get_activation, padding_mask
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, Seq2SeqModelOutput
from ..task_heads import Seq2SeqLM, Seq2SeqModel, Seq2SeqSequenceClassification


class BartConfig(PretrainedConfig):
    model_type = "bart"
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
        "decoder_start_token_id": 2,
        "forced_eos_token_id": 2,
        "tie_word_embeddings": True,
    }

    def __init__(self, **kwargs) -> None:
        # BART's classification checkpoints default to 3 labels (MNLI), not 2.
        if "id2label" not in kwargs and "num_labels" not in kwargs:
            kwargs["num_labels"] = 3
        super().__init__(**kwargs)


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None, decoder_start_token_id: int) -> torch.Tensor:
    """Decoder inputs for denoising: ``input_ids`` moved one step right behind the start token (-100 becomes pad)."""
    if pad_token_id is None or decoder_start_token_id is None:
        raise ValueError(
            "config.pad_token_id and config.decoder_start_token_id must be set to build decoder_input_ids from "
            f"input_ids (found {pad_token_id} and {decoder_start_token_id}); set them in config.json or pass "
            "decoder_input_ids."
        )
    shifted = input_ids.new_empty(input_ids.shape)
    shifted[:, 1:] = input_ids[:, :-1]
    shifted[:, 0] = decoder_start_token_id
    return shifted.masked_fill_(shifted == -100, pad_token_id)


class BartLearnedPositionalEmbedding(nn.Embedding):
    """Learned positions; fairseq reserved the first two rows, so position ``p`` reads row ``p + 2``."""

    offset = 2

    def __init__(self, num_positions: int, embedding_dim: int) -> None:
        super().__init__(num_positions + self.offset, embedding_dim)

    def forward(self, length: int, positions: torch.Tensor | None = None) -> torch.Tensor:
        """Rows for positions 0..length-1 (or ``positions``, 1-D), as ``(length, dim)`` (broadcast over the batch)."""
        if positions is not None:
            return F.embedding(positions + self.offset, self.weight)
        return self.weight[self.offset : self.offset + length]


class BartScaledWordEmbedding(nn.Embedding):
    """Token embeddings times ``embed_scale`` (sqrt(d_model) when config.scale_embedding, else 1)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, embed_scale: float) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.embed_scale = embed_scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        embedded = super().forward(input_ids)
        return embedded * self.embed_scale if self.embed_scale != 1.0 else embedded


class BartAttention(nn.Module):
    """Multi-head attention; self-attention when ``key_value_states`` is None, cross-attention otherwise.

    With a ``cache`` (an ``EncoderDecoderCache``), self-attention appends its keys and values at ``cache_position``
    and attends over everything cached; cross-attention projects the encoder output once and reuses it.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, layer_idx: int | None = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"d_model ({embed_dim}) must be divisible by the number of attention heads ({num_heads}).")
        self.layer_idx = layer_idx
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.out_proj = nn.Linear(embed_dim, embed_dim)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length = x.shape[:2]
        return x.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        key_value_states: torch.Tensor | None = None,
        query_states: torch.Tensor | None = None,
        cache=None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``query_states``: self-attention for these positions only (keys and values still from every position)."""
        query = self._heads(self.q_proj(hidden_states if query_states is None else query_states))
        if key_value_states is not None:  # cross-attention: the encoder output's keys and values
            project = lambda: (self._heads(self.k_proj(key_value_states)), self._heads(self.v_proj(key_value_states)))  # noqa: E731
            key, value = project() if cache is None else cache.cross_attention(self.layer_idx, project)
        else:
            key = self._heads(self.k_proj(hidden_states))
            value = self._heads(self.v_proj(hidden_states))
            if cache is not None:
                key, value = cache.update(self.layer_idx, key, value, cache_position)
        context, probs = attention(
            query, key, value, mask,
            dropout_p=self.dropout if self.training else 0.0,
            output_attentions=output_attentions,
        )
        return self.out_proj(context), probs


class BartEncoderLayer(nn.Module):
    """Post-norm: attention, add, LayerNorm; feed-forward, add, LayerNorm."""

    def __init__(self, config: BartConfig) -> None:
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
        attended, probs = self.self_attn(hidden_states, mask, output_attentions)
        hidden_states = self.self_attn_layer_norm(hidden_states + F.dropout(attended, self.dropout, self.training))
        hidden_states = self.final_layer_norm(hidden_states + _feed_forward(self, hidden_states))
        if hidden_states.dtype == torch.float16:
            hidden_states = _clamp_inf(hidden_states)
        return hidden_states, probs


class BartDecoderLayer(nn.Module):
    """Post-norm: causal self-attention, cross-attention over the encoder output, feed-forward."""

    def __init__(self, config: BartConfig, layer_idx: int) -> None:
        super().__init__()
        self.embed_dim = config.d_model
        heads = config.decoder_attention_heads
        self.self_attn = BartAttention(config.d_model, heads, config.attention_dropout, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = BartAttention(config.d_model, heads, config.attention_dropout, layer_idx)
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
        query_index: torch.Tensor | None = None,
        cache=None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """``query_index`` (one position per row): compute the output at those positions only, (batch, 1, d_model).
        ``cache``/``cache_position``: see ``BartAttention``."""
        queries = hidden_states
        if query_index is not None:
            rows = torch.arange(hidden_states.shape[0], device=hidden_states.device)
            queries = hidden_states[rows, query_index].unsqueeze(1)
            if self_mask is not None:
                self_mask = self_mask.expand(hidden_states.shape[0], -1, -1, -1)[rows, :, query_index].unsqueeze(2)
        attended, self_probs = self.self_attn(
            hidden_states, self_mask, output_attentions, query_states=queries, cache=cache, cache_position=cache_position
        )
        hidden_states = self.self_attn_layer_norm(queries + F.dropout(attended, self.dropout, self.training))
        attended, cross_probs = self.encoder_attn(
            hidden_states, encoder_mask, output_attentions, encoder_hidden_states, cache=cache
        )
        hidden_states = self.encoder_attn_layer_norm(hidden_states + F.dropout(attended, self.dropout, self.training))
        hidden_states = self.final_layer_norm(hidden_states + _feed_forward(self, hidden_states))
        return hidden_states, self_probs, cross_probs


def _feed_forward(layer: BartEncoderLayer | BartDecoderLayer, hidden_states: torch.Tensor) -> torch.Tensor:
    inner = F.dropout(layer.activation_fn(layer.fc1(hidden_states)), layer.activation_dropout, layer.training)
    return F.dropout(layer.fc2(inner), layer.dropout, layer.training)


def _clamp_inf(hidden_states: torch.Tensor) -> torch.Tensor:
    """fp16 activations can overflow in BART's encoder; transformers clamps them to stay finite, so do we."""
    if torch.isfinite(hidden_states).all():
        return hidden_states
    limit = torch.finfo(hidden_states.dtype).max - 1000
    return hidden_states.clamp(-limit, limit)


def _embedding_scale(config: BartConfig) -> float:
    return math.sqrt(config.d_model) if config.scale_embedding else 1.0


class _BartStack(nn.Module):
    """What the encoder and the decoder share: token and position embeddings, their LayerNorm, a list of layers."""

    def __init__(self, config: BartConfig, layers: list[nn.Module]) -> None:
        super().__init__()
        self.embed_tokens = BartScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config)
        )
        self.embed_positions = BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        self.layers = nn.ModuleList(layers)
        self.output_attentions = config.output_attentions
        self.output_hidden_states = config.output_hidden_states
        self.layernorm_embedding = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout
        self.max_length = config.max_position_embeddings
        self.hidden_size = config.d_model

    def embed(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Checked inputs -> the first layer's input: scaled token embeddings + positions, LayerNorm, dropout.

        ``positions`` (1-D, shared by the batch): the tokens' positions when they continue a cache (the mask then
        covers the cached tokens too, so it is not checked against the inputs here).
        """
        check_inputs(
            input_ids, inputs_embeds, attention_mask if positions is None else None,
            max_length=self.max_length, hidden_size=self.hidden_size,
        )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden = self.layernorm_embedding(inputs_embeds + self.embed_positions(inputs_embeds.shape[1], positions))
        return F.dropout(hidden, self.dropout, self.training)


class BartEncoder(_BartStack):
    """The encoder; ``model.get_encoder()`` returns it, called as transformers' (keywords, defaults from the config)."""

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config, [BartEncoderLayer(config) for _ in range(config.encoder_layers)])

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutput | tuple:
        output_attentions = self.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.output_hidden_states if output_hidden_states is None else output_hidden_states
        hidden = self.embed(input_ids, attention_mask, inputs_embeds)
        mask = padding_mask(attention_mask, hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            hidden, probs = layer(hidden, mask, output_attentions)
            if all_hidden is not None:
                all_hidden.append(hidden)
            if all_attentions is not None:
                all_attentions.append(probs)
        out = BaseModelOutput(
            last_hidden_state=hidden,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_attentions) if all_attentions is not None else None,
        )
        return out if return_dict else out.to_tuple()


class BartDecoder(_BartStack):
    def __init__(self, config: BartConfig) -> None:
        super().__init__(config, [BartDecoderLayer(config, i) for i in range(config.decoder_layers)])

    def forward(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        last_layer_query_index: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None, tuple | None]:
        """(last hidden state, hidden states, self-attentions, cross-attentions); the tuples None unless asked.
        ``last_layer_query_index``: the last layer computes one position per row, (batch, 1, d_model).

        With a ``cache`` the tokens continue the cached ones: their positions are their cache slots
        (``cache_position``; None: right after the cached tokens) and ``attention_mask``, when given, covers the
        cached and the new tokens (transformers' convention).
        """
        if cache is None:
            hidden = self.embed(input_ids, attention_mask, inputs_embeds)
            length = hidden.shape[1]
            # Both masks once per forward, shared by every layer.
            positions = torch.arange(length, device=hidden.device)
            self_mask = causal_mask(attention_mask, positions, length, hidden.dtype)
        else:
            length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
            device = self.embed_positions.weight.device
            if cache_position is None:  # a host-side check: positions past the table would fail inside F.embedding
                end = cache.get_seq_length() + length
                if end > self.max_length:
                    raise ValueError(
                        f"The decoder would reach position {end}, but this model has {self.max_length} positions "
                        "(max_position_embeddings). Generate fewer tokens."
                    )
            # BART's decoder positions are its cache slots (padding does not shift them), so position_ids go unused.
            cache_position, _, keep, kv_length = decoder_inputs(
                cache, attention_mask, None, cache_position, length, device
            )
            hidden = self.embed(input_ids, None, inputs_embeds, positions=cache_position)
            self_mask = causal_mask(keep, cache_position, kv_length, hidden.dtype)
        encoder_mask = padding_mask(encoder_attention_mask, hidden.dtype)
        all_hidden = [hidden] if output_hidden_states else None
        self_attentions = [] if output_attentions else None
        cross_attentions = [] if output_attentions else None
        for index, layer in enumerate(self.layers):
            query_index = last_layer_query_index if index == len(self.layers) - 1 else None
            hidden, self_probs, cross_probs = layer(
                hidden, self_mask, encoder_hidden_states, encoder_mask, output_attentions, query_index,
                cache, cache_position,
            )
            if all_hidden is not None:
                all_hidden.append(hidden)
            if output_attentions:
                self_attentions.append(self_probs)
                cross_attentions.append(cross_probs)
        as_tuple = lambda items: tuple(items) if items is not None else None  # noqa: E731
        return hidden, as_tuple(all_hidden), as_tuple(self_attentions), as_tuple(cross_attentions)


class BartPreTrainedModel(PreTrainedModel):
    config_class = BartConfig
    base_model_prefix = "model"
    # fairseq conversions carry encoder.version / decoder.version markers; they hold no weights.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"(^|\.)(encoder|decoder)\.version$"]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared

    def get_encoder(self) -> BartEncoder:
        return self.base_model.encoder

    def get_decoder(self) -> BartDecoder:
        return self.base_model.decoder

    def kv_cache_shape(self) -> tuple[int, int, int]:
        """(layers, heads, head size) of the decoder's self-attention: what its KV cache holds."""
        config = self.config
        return config.decoder_layers, config.decoder_attention_heads, config.d_model // config.decoder_attention_heads


def _tied_embeddings(prefix: str) -> dict[str, str]:
    """Encoder and decoder read the shared token embeddings (checkpoints store all three, identical)."""
    return {
        f"{prefix}encoder.embed_tokens.weight": f"{prefix}shared.weight",
        f"{prefix}decoder.embed_tokens.weight": f"{prefix}shared.weight",
    }


class BartModel(Seq2SeqModel, BartPreTrainedModel):
    _tied_weights_keys = _tied_embeddings("")

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config))
        self.encoder = BartEncoder(config)
        self.decoder = BartDecoder(config)
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
        decoder_query_index: torch.Tensor | None = None,
        past_key_values=None,
        use_cache: bool = False,
        cache_position: torch.Tensor | None = None,
    ) -> Seq2SeqModelOutput:
        """Encoder then decoder; forward and the heads call this with their resolved flags.

        ``decoder_query_index``: the last decoder layer computes only that position of each row (last_hidden_state
        is then (batch, 1, d_model)). ``past_key_values``: an ``EncoderDecoderCache`` the decoder continues (a bare
        self-attention cache is wrapped in one); ``use_cache`` without one starts a dynamic cache. Either way the
        cache comes back in ``past_key_values``.
        """
        cache = past_key_values
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            if not isinstance(cache, (StaticCache, DynamicCache)):
                raise TypeError(
                    "past_key_values should be a hugkit EncoderDecoderCache (or a StaticCache/DynamicCache for the "
                    f"decoder's self-attention), found {type(cache).__name__}. Pass the past_key_values a previous "
                    "call returned, or use_cache=True to start one."
                )
            cache = EncoderDecoderCache(cache)
        if cache is None and use_cache:
            cache = EncoderDecoderCache(DynamicCache())
        if cache is not None and decoder_query_index is not None:
            raise ValueError("decoder_query_index (sequence classification) does not combine with a decoder cache.")
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError(
                    "BART needs decoder inputs: pass decoder_input_ids or decoder_inputs_embeds, or input_ids "
                    "(decoder_input_ids are then input_ids shifted right, as in BART's denoising pre-training)."
                )
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                output_attentions=output_attentions, output_hidden_states=output_hidden_states,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*tuple(encoder_outputs)[:3])
        hidden, all_hidden, self_attentions, cross_attentions = self.decoder(
            decoder_input_ids, decoder_attention_mask, encoder_outputs.last_hidden_state, attention_mask,
            decoder_inputs_embeds, output_hidden_states, output_attentions, decoder_query_index,
            cache, cache_position,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=hidden,
            past_key_values=cache,
            decoder_hidden_states=all_hidden,
            decoder_attentions=self_attentions,
            cross_attentions=cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


# --- task heads ----------------------------------------------------------------------------------


class BartClassificationHead(nn.Module):
    """dense -> tanh -> out_proj on the sentence vector (dropout before each projection)."""

    def __init__(self, input_dim: int, inner_dim: int, num_classes: int, pooler_dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(input_dim, inner_dim)
        self.dropout = nn.Dropout(p=pooler_dropout)
        self.out_proj = nn.Linear(inner_dim, num_classes)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = torch.tanh(self.dense(self.dropout(hidden_states)))
        return self.out_proj(self.dropout(hidden_states))


class BartForSequenceClassification(Seq2SeqSequenceClassification, BartPreTrainedModel):
    """Classifier on the decoder state at each row's last <eos> (facebook/bart-large-mnli and its kin)."""

    _tied_weights_keys = _tied_embeddings("model.")

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = BartModel(config)
        self.classification_head = BartClassificationHead(
            config.d_model, config.d_model, config.num_labels, config.classifier_dropout or 0.0
        )


class BartForConditionalGeneration(Seq2SeqLM, BartPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``;
    ``generate`` (summarization, translation) from the Seq2SeqLM task."""

    has_learned_positions = True  # the decoder cannot go past max_position_embeddings

    _tied_weights_keys = {"lm_head.weight": "model.shared.weight", **_tied_embeddings("model.")}
    # Some checkpoints were saved without the (all-zero) bias: it then starts at zero, as in transformers.
    _keys_to_ignore_on_load_missing = [r"^final_logits_bias$"]

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = BartModel(config)
        self.register_buffer("final_logits_bias", torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.tie_weights()

    def _init_buffers(self, device: torch.device) -> None:
        if self.final_logits_bias.is_meta:  # not in the checkpoint
            self.final_logits_bias = torch.zeros(self.final_logits_bias.shape, device=device, dtype=self.dtype)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def head(self, decoded: Seq2SeqModelOutput) -> torch.Tensor:
        return self.lm_head(decoded.last_hidden_state) + self.final_logits_bias
