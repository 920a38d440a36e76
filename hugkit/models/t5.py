"""T5 (v1.0, v1.1, flan-t5): a pre-norm Transformer encoder-decoder with relative position buckets, with
transformers' module names so checkpoints load as they are.

Reads top to bottom: config, T5LayerNorm, feed-forward, attention (relative position bias, no 1/sqrt(d) scaling),
blocks, the stack (encoder or decoder), base model, LM head, encoder-only model. mT5 (``mt5.py``) subclasses these.

What differs from BART, and why the code looks the way it does:

- Positions are a learned scalar per (head, relative-distance bucket), added to the attention scores. Only the
  first block of each stack owns ``relative_attention_bias``; the stack computes the bias once from it and every
  block reuses it (the mask is folded into the same tensor, so each block adds one tensor to its scores).
- The attention scores are not scaled by 1/sqrt(d_kv): T5 folded that into its initialisation.
- T5ForConditionalGeneration keeps ``shared``/``encoder``/``decoder``/``lm_head`` at the top level (no ``model.``
  prefix), so it is its own base model: it runs the encoder-decoder with the same ``run`` as T5Model
  (``encoder_decoder.EncoderDecoderModel``'s, as BART's; T5's stack is its own).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import EncoderDecoderModel, shared_embedding_ties, shift_tokens_right
from ..kv_cache import EncoderDecoderCache, causal_mask, decoder_inputs
from ..layers import check_inputs, get_activation, padding_mask
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions, Seq2SeqModelOutput
from ..task_heads import Seq2SeqLM, Seq2SeqModel, resolve_cache, resolve_flags


class T5Config(PretrainedConfig):
    model_type = "t5"
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "num_heads",
        "num_hidden_layers": "num_layers",
        "head_dim": "d_kv",
    }
    defaults = {
        "vocab_size": 32128,
        "d_model": 512,
        "d_kv": 64,
        "d_ff": 2048,
        "num_layers": 6,
        "num_decoder_layers": None,
        "num_heads": 8,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "dropout_rate": 0.1,
        "layer_norm_epsilon": 1e-6,
        "initializer_factor": 1.0,
        "feed_forward_proj": "relu",
        "is_encoder_decoder": True,
        "use_cache": True,
        "pad_token_id": 0,
        "eos_token_id": 1,
        # transformers' T5Config has no default here; every released T5 checkpoint sets 0 (the pad token).
        "decoder_start_token_id": 0,
        "classifier_dropout": 0.0,
        "is_decoder": False,
    }

    def __init__(self, **kwargs: Any) -> None:
        feed_forward_proj = kwargs.get("feed_forward_proj", self.defaults["feed_forward_proj"])
        parts = feed_forward_proj.split("-") if isinstance(feed_forward_proj, str) else []
        if not parts or len(parts) > 2 or (len(parts) == 2 and parts[0] != "gated"):
            raise ValueError(
                f"feed_forward_proj should be an activation name ('relu') or 'gated-' plus one ('gated-gelu', "
                f"'gated-silu'); found {feed_forward_proj!r}. Fix it in config.json."
            )
        # Derived as transformers does; values stored in config.json win (transformers applies them last too).
        kwargs.setdefault("is_gated_act", parts[0] == "gated")
        kwargs.setdefault("dense_act_fn", "gelu_new" if feed_forward_proj == "gated-gelu" else parts[-1])
        # transformers 5 always ties lm_head to the shared embeddings unless the checkpoint holds its own
        # lm_head.weight (see T5ForConditionalGeneration.tie_weights), and keeps the old tie_word_embeddings=False
        # of v1.1 / flan-t5 configs only as "do not scale the decoder output".
        tied = kwargs.pop("tie_word_embeddings", None)
        kwargs.setdefault("scale_decoder_outputs", tied is not False)
        super().__init__(**kwargs, tie_word_embeddings=True)
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers  # symmetric by default


# --- layers --------------------------------------------------------------------------------------


class T5LayerNorm(nn.Module):
    """RMS norm: scale only, no mean subtraction, no bias; the variance is accumulated in fp32."""

    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        variance = hidden_states.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + self.variance_epsilon)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            hidden_states = hidden_states.to(self.weight.dtype)
        return self.weight * hidden_states


def _to_wo_dtype(hidden_states: torch.Tensor, wo: nn.Module) -> torch.Tensor:
    """transformers keeps ``wo`` in fp32 in fp16 models (flan-t5 overflows otherwise): feed it its own dtype."""
    weight = getattr(wo, "weight", None)  # quantized replacements may hold no float weight
    if isinstance(weight, torch.Tensor) and weight.is_floating_point() and hidden_states.dtype != weight.dtype:
        return hidden_states.to(weight.dtype)
    return hidden_states


class T5DenseActDense(nn.Module):
    """T5 v1.0: wi -> activation (relu) -> wo."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.act(self.wi(hidden_states)))
        return self.wo(_to_wo_dtype(hidden_states, self.wo))


class T5DenseGatedActDense(nn.Module):
    """T5 v1.1 / flan-t5 / mT5: activation(wi_0 x) * wi_1 x -> wo."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = nn.Dropout(config.dropout_rate)
        self.act = get_activation(config.dense_act_fn)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.dropout(self.act(self.wi_0(hidden_states)) * self.wi_1(hidden_states))
        return self.wo(_to_wo_dtype(hidden_states, self.wo))


class T5LayerFF(nn.Module):
    def __init__(self, config: T5Config) -> None:
        super().__init__()
        dense = T5DenseGatedActDense if config.is_gated_act else T5DenseActDense
        self.DenseReluDense = dense(config)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return hidden_states + self.dropout(self.DenseReluDense(self.layer_norm(hidden_states)))


def relative_position_bucket(
    relative_position: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Bucket of each ``key - query`` distance (Mesh TensorFlow's scheme, which the checkpoints were trained on).

    Bidirectional (encoder): half the buckets for keys after the query, half for keys before it. Causal (decoder):
    only keys at or before the query count; later ones fall in bucket 0 (they are masked anyway). Within a half,
    the first ``num_buckets / 2`` distances get a bucket each; larger ones share log-spaced buckets up to
    ``max_distance``, beyond which everything lands in the last bucket.
    """
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = (relative_position > 0).to(torch.long) * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # log(0) is -inf where distance is 0; those entries take the exact branch below.
    scaled = torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    large = (max_exact + scaled.to(torch.long)).clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


def _attention(
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    bias: torch.Tensor | None,
    dropout_p: float,
    output_attentions: bool,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Unscaled dot-product attention plus an additive ``bias`` (relative positions and mask); the context comes
    back as (batch, queries, heads * d_kv). Same as layers.attention except: scale 1 and a per-head bias."""
    batch, heads, length, head_dim = query.shape
    if output_attentions:  # the fused kernel never materialises the probabilities: multiply them out
        scores = torch.matmul(query, key.transpose(-1, -2))
        if bias is not None:
            scores = scores + bias
        probs = torch.softmax(scores, dim=-1)
        context = torch.matmul(F.dropout(probs, p=dropout_p) if dropout_p else probs, value)
    else:
        probs = None
        context = F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout_p, scale=1.0)
    return context.transpose(1, 2).reshape(batch, length, heads * head_dim), probs


class T5Attention(nn.Module):
    """Multi-head attention without biases or scaling; self-attention, or cross-attention over ``key_value_states``.

    The decoder's self-attention writes its keys/values into the cache (``update``); cross-attention takes the
    encoder's projections from it (``cross_attention``), which computes them once per request.
    """

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, is_decoder: bool, layer_idx: int) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.has_relative_attention_bias = has_relative_attention_bias
        self.relative_attention_num_buckets = config.relative_attention_num_buckets
        self.relative_attention_max_distance = config.relative_attention_max_distance
        self.n_heads = config.num_heads
        self.key_value_proj_dim = config.d_kv
        self.inner_dim = self.n_heads * self.key_value_proj_dim
        self.dropout = config.dropout_rate
        self.layer_idx = layer_idx
        self.q = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.k = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.v = nn.Linear(config.d_model, self.inner_dim, bias=False)
        self.o = nn.Linear(self.inner_dim, config.d_model, bias=False)
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(self.relative_attention_num_buckets, self.n_heads)

    def compute_bias(self, query_positions: torch.Tensor, key_length: int) -> torch.Tensor:
        """Position bias ``(1, heads, queries, key_length)`` for queries at ``query_positions`` (cache slots in the
        decoder) against key slots 0..key_length-1."""
        keys = torch.arange(key_length, device=query_positions.device)
        buckets = relative_position_bucket(
            keys[None, :] - query_positions[:, None],
            bidirectional=not self.is_decoder,
            num_buckets=self.relative_attention_num_buckets,
            max_distance=self.relative_attention_max_distance,
        )
        return self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], self.n_heads, self.key_value_proj_dim).transpose(1, 2)

    def forward(
        self,
        hidden_states: torch.Tensor,
        bias: torch.Tensor | None,
        output_attentions: bool,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
        key_value_states: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self._heads(self.q(hidden_states))
        if key_value_states is None:
            key, value = self._heads(self.k(hidden_states)), self._heads(self.v(hidden_states))
            if cache is not None:
                key, value = cache.update(self.layer_idx, key, value, cache_position)
        else:
            def project() -> tuple[torch.Tensor, torch.Tensor]:
                return self._heads(self.k(key_value_states)), self._heads(self.v(key_value_states))

            key, value = project() if cache is None else cache.cross_attention(self.layer_idx, project)
        context, probs = _attention(
            query, key, value, bias, self.dropout if self.training else 0.0, output_attentions
        )
        return self.o(context), probs


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool, is_decoder: bool, layer_idx: int) -> None:
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias, is_decoder, layer_idx)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden_states, bias, output_attentions, cache, cache_position):
        attended, probs = self.SelfAttention(self.layer_norm(hidden_states), bias, output_attentions, cache, cache_position)
        return hidden_states + self.dropout(attended), probs


class T5LayerCrossAttention(nn.Module):
    def __init__(self, config: T5Config, layer_idx: int) -> None:
        super().__init__()
        self.EncDecAttention = T5Attention(config, False, True, layer_idx)
        self.layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def forward(self, hidden_states, encoder_hidden_states, mask, output_attentions, cache):
        attended, probs = self.EncDecAttention(
            self.layer_norm(hidden_states), mask, output_attentions, cache, key_value_states=encoder_hidden_states
        )
        return hidden_states + self.dropout(attended), probs


def _clamp_fp16(hidden_states: torch.Tensor) -> torch.Tensor:
    """fp16 activations can overflow in T5; like transformers, an inf anywhere clamps the tensor to max - 1000.
    Tensor ops only (no host sync), as transformers writes it."""
    if hidden_states.dtype != torch.float16:
        return hidden_states
    largest = torch.finfo(torch.float16).max
    limit = torch.where(torch.isinf(hidden_states).any(), largest - 1000, largest)
    return torch.clamp(hidden_states, min=-limit, max=limit)


class T5Block(nn.Module):
    """Self-attention, cross-attention (decoder), feed-forward: each pre-norm with a residual."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool, is_decoder: bool, layer_idx: int) -> None:
        super().__init__()
        self.is_decoder = is_decoder
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias, is_decoder, layer_idx)])
        if is_decoder:
            self.layer.append(T5LayerCrossAttention(config, layer_idx))
        self.layer.append(T5LayerFF(config))

    def forward(
        self,
        hidden_states: torch.Tensor,
        self_bias: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor | None,
        cross_mask: torch.Tensor | None,
        output_attentions: bool,
        cache: EncoderDecoderCache | None,
        cache_position: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        hidden_states, self_probs = self.layer[0](hidden_states, self_bias, output_attentions, cache, cache_position)
        hidden_states = _clamp_fp16(hidden_states)
        cross_probs = None
        if self.is_decoder and encoder_hidden_states is not None:
            hidden_states, cross_probs = self.layer[1](
                hidden_states, encoder_hidden_states, cross_mask, output_attentions, cache
            )
            hidden_states = _clamp_fp16(hidden_states)
        return _clamp_fp16(self.layer[-1](hidden_states)), self_probs, cross_probs


class T5Stack(nn.Module):
    """The encoder or the decoder: embeddings (shared with the model), blocks, final norm."""

    def __init__(self, config: T5Config, embed_tokens: nn.Embedding, is_decoder: bool) -> None:
        super().__init__()
        self.config = config
        self.is_decoder = is_decoder
        self.embed_tokens = embed_tokens
        num_layers = config.num_decoder_layers if is_decoder else config.num_layers
        self.block = nn.ModuleList(T5Block(config, i == 0, is_decoder, i) for i in range(num_layers))
        self.final_layer_norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.dropout = nn.Dropout(config.dropout_rate)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.embed_tokens = embeddings

    def _position_bias(
        self, query_positions: torch.Tensor, key_length: int, mask: torch.Tensor | None, dtype: torch.dtype
    ) -> torch.Tensor | None:
        """Position bias plus mask, one tensor for every block: only the first block owns the bias table."""
        if not len(self.block):
            return mask
        bias = self.block[0].layer[0].SelfAttention.compute_bias(query_positions, key_length).to(dtype)
        return bias if mask is None else bias + mask

    def _decoder_bias(self, attention_mask, cache, cache_position, batch: int, length: int, hidden: torch.Tensor):
        """(causal self-attention bias over the key slots, the new tokens' cache slots). The queries' positions are
        their cache slots, so cached decoding sees the same relative distances as a full forward."""
        if attention_mask is not None and (attention_mask.dim() != 2 or attention_mask.shape[0] != batch):
            raise ValueError(
                f"decoder_attention_mask should have shape (batch_size, cached + new tokens) with batch_size "
                f"{batch}, found {tuple(attention_mask.shape)}."
            )
        cache_position, _, keep, kv_length = decoder_inputs(cache, attention_mask, None, cache_position, length, hidden.device)
        mask = causal_mask(keep, cache_position, kv_length, hidden.dtype)
        return self._position_bias(cache_position, kv_length, mask, hidden.dtype), cache_position

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        past_key_values: EncoderDecoderCache | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> BaseModelOutput | BaseModelOutputWithPastAndCrossAttentions | tuple:
        """The encoder returns a BaseModelOutput; the decoder adds the cache and the cross-attentions.
        (Arguments in the order of transformers' T5Stack.forward; ``cache`` is its transformers 5 name for
        ``past_key_values``.)

        Decoder only: ``attention_mask`` covers the cached and the new tokens, ``cache_position`` gives the new
        tokens' cache slots (None: right after those cached), ``use_cache`` starts a dynamic cache when none is passed.
        """
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        cache = resolve_cache(past_key_values, cache)
        if not self.is_decoder and (cache is not None or use_cache):
            raise ValueError("The T5 encoder keeps no cache: pass past_key_values/use_cache to the decoder or the model.")
        if cache is None and use_cache:
            cache = EncoderDecoderCache()
        if cache is not None and not isinstance(cache, EncoderDecoderCache):
            raise TypeError(
                f"T5's decoder cache must be a hugkit.kv_cache.EncoderDecoderCache, found {type(cache).__name__}. "
                "Wrap it, e.g. EncoderDecoderCache(StaticCache(...)), or use EncoderDecoderCache.for_model(model, ...)."
            )
        # Relative positions: no length limit, so no max_length check. The decoder's mask may be longer than its
        # input (it covers cached tokens too): checked below instead.
        batch, length = check_inputs(
            input_ids, inputs_embeds, None if self.is_decoder else attention_mask,
            max_length=math.inf, hidden_size=self.config.d_model,
        )
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        hidden = self.dropout(inputs_embeds)

        if self.is_decoder:
            bias, cache_position = self._decoder_bias(attention_mask, cache, cache_position, batch, length, hidden)
            cross_mask = padding_mask(encoder_attention_mask, hidden.dtype)
        else:
            positions = torch.arange(length, device=hidden.device)
            mask = padding_mask(attention_mask, hidden.dtype)
            bias, cross_mask = self._position_bias(positions, length, mask, hidden.dtype), None

        all_hidden = [] if output_hidden_states else None
        self_attentions = [] if output_attentions else None
        cross_attentions = [] if output_attentions and self.is_decoder else None
        for block in self.block:
            if all_hidden is not None:
                all_hidden.append(hidden)
            hidden, self_probs, cross_probs = block(
                hidden, bias, encoder_hidden_states, cross_mask, output_attentions, cache, cache_position
            )
            if self_attentions is not None:
                self_attentions.append(self_probs)
            if cross_attentions is not None:
                cross_attentions.append(cross_probs)
        hidden = self.dropout(self.final_layer_norm(hidden))
        if all_hidden is not None:  # as transformers: the last entry is the normalised output
            all_hidden.append(hidden)

        as_tuple = lambda items: tuple(items) if items is not None else None  # noqa: E731
        if self.is_decoder:
            out = BaseModelOutputWithPastAndCrossAttentions(
                last_hidden_state=hidden, past_key_values=cache, hidden_states=as_tuple(all_hidden),
                attentions=as_tuple(self_attentions), cross_attentions=as_tuple(cross_attentions),
            )
        else:
            out = BaseModelOutput(
                last_hidden_state=hidden, hidden_states=as_tuple(all_hidden), attentions=as_tuple(self_attentions)
            )
        return out if return_dict else out.to_tuple()


# --- models ----------------------------------------------------------------------------------------


class T5PreTrainedModel(PreTrainedModel):
    config_class = T5Config
    # As in transformers: no model here has a ``transformer`` attribute, so each class is its own base model and
    # checkpoint keys are used as they are (``encoder.block.0...``, ``lm_head.weight``).
    base_model_prefix = "transformer"
    # Old checkpoints carry a relative bias for cross-attention, which T5 never uses.
    _keys_to_ignore_on_load_unexpected = [r"^decoder\.block\.0\.layer\.1\.EncDecAttention\.relative_attention_bias\.weight$"]
    # encoder/decoder.embed_tokens are the ``shared`` module itself; a checkpoint may store them or not.
    _tied_weights_keys = shared_embedding_ties()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.shared

    def set_input_embeddings(self, embeddings: nn.Embedding) -> None:
        self.shared = embeddings
        for stack in (getattr(self, "encoder", None), getattr(self, "decoder", None)):
            if stack is not None:
                stack.set_input_embeddings(embeddings)

    def get_encoder(self) -> T5Stack:
        return self.encoder

    def _shift_right(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Decoder inputs for teacher forcing (transformers' name): ``input_ids`` one step right behind
        decoder_start_token_id, -100 -> pad. T5 uses 0 (the pad token) for both."""
        return shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)


class T5EncoderDecoder(EncoderDecoderModel, T5PreTrainedModel):
    """``shared``, ``encoder`` and ``decoder`` at the top level, and ``run``: what T5Model and
    T5ForConditionalGeneration share (the LM adds ``lm_head`` beside them, so it needs no base-model attribute).
    Without decoder inputs ``run`` refuses (``EncoderDecoderModel.default_decoder_input_ids``), as transformers'."""

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)
        self.decoder = T5Stack(config, self.shared, is_decoder=True)

    def kv_cache_shape(self) -> tuple[int, int, int]:
        """(decoder layers, heads, d_kv): what the decoder's self-attention cache holds."""
        return len(self.decoder.block), self.config.num_heads, self.config.d_kv


class T5Model(Seq2SeqModel, T5EncoderDecoder):
    pass


class T5ForConditionalGeneration(Seq2SeqLM, T5EncoderDecoder):
    """Vocabulary logits: ``lm_head`` over the decoder output (scaled by d_model**-0.5 for v1.0 checkpoints).

    ``lm_head`` shares the embeddings' tensor unless the checkpoint holds its own ``lm_head.weight`` (v1.1,
    flan-t5 and mT5 do), which is transformers 5's rule: its T5Config always says tie_word_embeddings=True.
    """

    _keys_to_ignore_on_load_missing = [r"^lm_head\.weight$"]  # tied then (see tie_weights)

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.model_dim = config.d_model
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if not self.shared.weight.is_meta:  # a fresh model is tied; a loading one waits for its checkpoint
            self.lm_head.weight = self.shared.weight

    @property
    def _tied_weights_keys(self) -> dict[str, str]:
        """The embeddings always; lm_head when it holds the shared tensor now (save_pretrained then stores it once).
        A property, because whether lm_head is tied depends on the checkpoint, not the class."""
        ties = dict(T5PreTrainedModel._tied_weights_keys)
        # getattr: a quantized lm_head keeps no float weight.
        if getattr(self.lm_head, "weight", None) is self.shared.weight and not self.shared.weight.is_meta:
            ties["lm_head.weight"] = "shared.weight"
        return ties

    def tie_weights(self) -> None:
        super().tie_weights()
        # After loading: an lm_head the checkpoint did not fill is the shared embeddings.
        weight = getattr(self.lm_head, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.is_meta and not self.shared.weight.is_meta:
            self.lm_head.weight = self.shared.weight

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return self._shift_right(labels)

    def head(self, decoded: Seq2SeqModelOutput) -> torch.Tensor:
        hidden = decoded.last_hidden_state
        if self.config.scale_decoder_outputs:  # v1.0 trained its tied head on the scaled output
            hidden = hidden * (self.model_dim**-0.5)
        return self.lm_head(hidden)


class T5EncoderModel(T5PreTrainedModel):
    """The encoder alone (``shared`` + ``encoder``): sentence embeddings, text encoders of diffusion models.
    Decoder and lm_head weights of a full checkpoint are skipped."""

    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: T5Config) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config, self.shared, is_decoder=False)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        return self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=return_dict,
        )
