"""BART: a post-norm Transformer encoder-decoder, with transformers' module names so checkpoints load as they are.

Reads top to bottom: config, embeddings, attention, encoder and decoder layers, encoder, decoder, base model,
task heads (eos-pooled sequence classification, conditional generation logits).

The encoder and decoder loops, the decoder cache handling (``past_key_values``: an ``EncoderDecoderCache``, static
or dynamic self-attention; ``cache_position``), the base model's ``run`` and the ``final_logits_bias`` LM head are
the shared ones of ``hugkit.encoder_decoder``; BART adds its embeddings, layers and shift-right rule. The
cross-attention keys and values of the encoder output are computed once per cache. ``generate`` comes from the
Seq2SeqLM task (``hugkit.generation``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import (
    DecoderStack,
    EncoderDecoderModel,
    EncoderStack,
    Seq2SeqLMWithLogitsBias,
    shared_embedding_ties,
    shift_tokens_right,
)
from ..layers import attention, get_activation
from ..modeling_utils import PreTrainedModel
from ..task_heads import Seq2SeqModel, Seq2SeqSequenceClassification


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

    def _keys_values(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None,
        cache,
        cache_position: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Self-attention: keys and values of ``hidden_states`` (with a cache: written at ``cache_position``, then
        every cached slot's); cross-attention: the encoder output's, projected once per cache."""
        if key_value_states is not None:
            project = lambda: (self._heads(self.k_proj(key_value_states)), self._heads(self.v_proj(key_value_states)))  # noqa: E731
            return project() if cache is None else cache.cross_attention(self.layer_idx, project)
        key = self._heads(self.k_proj(hidden_states))
        value = self._heads(self.v_proj(hidden_states))
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value, cache_position)
        return key, value

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
        key, value = self._keys_values(hidden_states, key_value_states, cache, cache_position)
        context, probs = attention(
            query, key, value, mask,
            dropout_p=self.dropout if self.training else 0.0,
            output_attentions=output_attentions,
        )
        return self.out_proj(context), probs


class BartEncoderLayer(nn.Module):
    """Post-norm: attention, add, LayerNorm; feed-forward, add, LayerNorm. (mBART's pre-norm layers keep these
    modules; ``attention_class`` is what Whisper's change.)"""

    attention_class = BartAttention

    def __init__(self, config: BartConfig) -> None:
        super().__init__()
        self.embed_dim = config.d_model
        self.self_attn = self.attention_class(config.d_model, config.encoder_attention_heads, config.attention_dropout)
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
    """Post-norm: causal self-attention, cross-attention over the encoder output, feed-forward. (mBART's pre-norm
    layers keep these modules; ``attention_class`` is what Whisper's change.)"""

    attention_class = BartAttention

    def __init__(self, config: BartConfig, layer_idx: int | None = None) -> None:
        super().__init__()
        self.embed_dim = config.d_model
        heads = config.decoder_attention_heads
        self.self_attn = self.attention_class(config.d_model, heads, config.attention_dropout, layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = self.attention_class(config.d_model, heads, config.attention_dropout, layer_idx)
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


class _BartEmbeddings:
    """BART's embeddings, in its encoder and decoder (and mBART's): scaled token embeddings plus learned positions
    (position ``p`` reads row ``p + 2``), then ``layernorm_embedding``."""

    def _build_embeddings(self, config: BartConfig) -> None:
        self.embed_tokens = BartScaledWordEmbedding(
            config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config)
        )
        self.embed_positions = BartLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
        self.layernorm_embedding = nn.LayerNorm(config.d_model)

    def embed(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, positions: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``positions`` (1-D, shared by the batch): the tokens' positions; None: 0, 1, 2, ..."""
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        return self.layernorm_embedding(inputs_embeds + self.embed_positions(inputs_embeds.shape[1], positions))


class BartEncoder(_BartEmbeddings, EncoderStack):
    """The encoder; ``model.get_encoder()`` returns it, called as transformers' (keywords, defaults from the config).
    ``layer_class`` lets mBART reuse it with its pre-norm layers."""

    def __init__(self, config: BartConfig, layer_class: type[nn.Module] = BartEncoderLayer) -> None:
        super().__init__(config, [layer_class(config) for _ in range(config.encoder_layers)])
        self._build_embeddings(config)


class BartDecoder(_BartEmbeddings, DecoderStack):
    """The decoder over an ``EncoderDecoderCache`` (see ``encoder_decoder.DecoderStack``); its positions are its
    cache slots. ``layer_class`` lets mBART reuse it with its pre-norm layers."""

    def __init__(self, config: BartConfig, layer_class: type[nn.Module] = BartDecoderLayer) -> None:
        super().__init__(config, [layer_class(config, i) for i in range(config.decoder_layers)])
        self._build_embeddings(config)


class BartPreTrainedModel(EncoderDecoderModel, PreTrainedModel):
    config_class = BartConfig
    base_model_prefix = "model"
    # fairseq conversions carry encoder.version / decoder.version markers; they hold no weights.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"(^|\.)(encoder|decoder)\.version$"]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared


class BartModel(Seq2SeqModel, BartPreTrainedModel):
    _tied_weights_keys = shared_embedding_ties()

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config))
        self.encoder = BartEncoder(config)
        self.decoder = BartDecoder(config)
        self.tie_weights()

    def default_decoder_input_ids(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        """Without decoder inputs BART decodes ``input_ids`` shifted right (its denoising pre-training)."""
        if input_ids is None:
            raise ValueError(
                "BART needs decoder inputs: pass decoder_input_ids or decoder_inputs_embeds, or input_ids "
                "(decoder_input_ids are then input_ids shifted right, as in BART's denoising pre-training)."
            )
        return shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)


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

    _tied_weights_keys = shared_embedding_ties("model.")

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = BartModel(config)
        self.classification_head = BartClassificationHead(
            config.d_model, config.d_model, config.num_labels, config.classifier_dropout or 0.0
        )


class BartForConditionalGeneration(Seq2SeqLMWithLogitsBias, BartPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``,
    and ``generate`` (summarization, translation): the Seq2SeqLM task's (``encoder_decoder.Seq2SeqLMWithLogitsBias``)."""

    def __init__(self, config: BartConfig) -> None:
        super().__init__(config)
        self.model = BartModel(config)
        self._build_lm_head(config, config.vocab_size)
        self.tie_weights()
