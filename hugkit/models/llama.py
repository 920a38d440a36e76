"""Llama (1, 2, 3): RMSNorm, rotary positions (with Llama-3 / linear / dynamic scaling), grouped-query attention.

Also the decoder pieces Mistral, Qwen2 and Qwen3 reuse (RMSNorm, rotary embedding, attention, the decoder stack):
those files subclass what they change. Reads top to bottom: config, rotary positions, modules, base model, head.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..kv_cache import DynamicCache, causal_mask, decoder_inputs
from ..layers import attention, get_activation
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutputWithPast
from ..task_heads import CausalLM

logger = logging.getLogger(__name__)


class LlamaConfig(PretrainedConfig):
    model_type = "llama"
    defaults = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": None,
        "head_dim": None,
        "hidden_act": "silu",
        "max_position_embeddings": 2048,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "pretraining_tp": 1,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "attention_bias": False,
        "attention_dropout": 0.0,
        "mlp_bias": False,
    }

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None:
            self.head_dim = self.hidden_size // self.num_attention_heads


# --- rotary position embedding -------------------------------------------------------------------

ROPE_TYPES = ("default", "linear", "dynamic", "llama3")


def rope_parameters(config: PretrainedConfig) -> dict[str, Any]:
    """The RoPE settings of a config, whichever way the checkpoint spells them.

    transformers 5 writes ``rope_parameters`` (with ``rope_theta`` inside); older checkpoints have top-level
    ``rope_theta`` and an optional ``rope_scaling`` dict whose type key is ``rope_type`` or ``type``.
    """
    params = dict(getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {})
    params.setdefault("rope_type", params.get("type", "default"))
    params.setdefault("rope_theta", getattr(config, "rope_theta", None) or 10000.0)
    if params["rope_type"] == "llama3":
        params.setdefault(
            "original_max_position_embeddings",
            getattr(config, "original_max_position_embeddings", None) or config.max_position_embeddings,
        )
    if params["rope_type"] not in ROPE_TYPES:
        raise NotImplementedError(
            f"RoPE type {params['rope_type']!r} (config rope_parameters/rope_scaling) is not supported yet; "
            f"supported: {', '.join(ROPE_TYPES)}."
        )
    return params


def rope_inv_freq(config: PretrainedConfig, seq_len: int | None = None) -> torch.Tensor:
    """Inverse frequencies ``(head_dim // 2,)`` in float32, computed as transformers' rope init functions do."""
    params = rope_parameters(config)
    rope_type = params["rope_type"]
    dim = int(config.head_dim * params.get("partial_rotary_factor", 1.0))
    base = params["rope_theta"]
    if rope_type == "dynamic":
        # NTK-aware: a larger base once the sequence passes the trained length.
        seq_len = max(seq_len or 0, config.max_position_embeddings)
        factor = params["factor"]
        base = base * ((factor * seq_len / config.max_position_embeddings) - (factor - 1)) ** (dim / (dim - 2))
    inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if rope_type == "linear":
        inv_freq = inv_freq / params["factor"]
    elif rope_type == "llama3":
        # Long wavelengths are slowed by `factor`, short ones kept, the band between interpolated smoothly.
        factor = params["factor"]
        low, high = params["low_freq_factor"], params["high_freq_factor"]
        old_len = params["original_max_position_embeddings"]
        wavelen = 2 * math.pi / inv_freq
        scaled = torch.where(wavelen > old_len / low, inv_freq / factor, inv_freq)
        smooth = (old_len / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = ~(wavelen < old_len / high) * ~(wavelen > old_len / low)
        inv_freq = torch.where(is_medium, smoothed, scaled)
    return inv_freq


class LlamaRotaryEmbedding(nn.Module):
    """cos/sin tables for the given position ids; ``inv_freq`` is a non-persistent buffer rebuilt after loading."""

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        self.config = config
        self.rope_type = rope_parameters(config)["rope_type"]
        self.register_buffer("inv_freq", torch.empty(config.head_dim // 2), persistent=False)
        self.max_seq_len_cached = config.max_position_embeddings
        if not self.inv_freq.is_meta:
            self._init_buffers(self.inv_freq.device)

    def _init_buffers(self, device: torch.device) -> None:
        self.inv_freq = rope_inv_freq(self.config).to(device)
        self.original_inv_freq = self.inv_freq
        self.max_seq_len_cached = self.config.max_position_embeddings

    def _dynamic_update(self, position_ids: torch.Tensor) -> None:
        # transformers' rule: grow the base past the trained length, go back once a short input comes.
        seq_len = int(position_ids.max()) + 1
        original = self.config.max_position_embeddings
        if seq_len > self.max_seq_len_cached:
            self.inv_freq = rope_inv_freq(self.config, seq_len).to(self.inv_freq.device)
            self.max_seq_len_cached = seq_len
        if seq_len < original and self.max_seq_len_cached > original:
            self.inv_freq = self.original_inv_freq.to(self.inv_freq.device)
            self.max_seq_len_cached = original

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.rope_type == "dynamic":
            self._dynamic_update(position_ids)
        freqs = position_ids[..., None].float() * self.inv_freq.float()
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate ``(batch, heads, seq, head_dim)`` by per-position ``(batch, seq, head_dim)`` cos/sin (HF layout, no permute)."""
    cos, sin = cos[:, None], sin[:, None]
    return x * cos + rotate_half(x) * sin


# --- modules -------------------------------------------------------------------------------------


class LlamaRMSNorm(nn.Module):
    def __init__(self, hidden_size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(hidden_size))
        self.variance_epsilon = eps

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # Normalise in float32 whatever the model dtype, then scale in the model dtype (as transformers does).
        dtype = hidden_states.dtype
        hidden_states = hidden_states.float()
        hidden_states = hidden_states * torch.rsqrt(hidden_states.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * hidden_states.to(dtype)


class LlamaAttention(nn.Module):
    """Multi-head attention with rotary positions and grouped key/value heads.

    Subclasses change ``biases`` (Qwen2: q/k/v only) or ``qk_norm`` (Qwen3 normalises q and k per head). ``sliding_window`` is set per layer by the model (Mistral, Qwen2/3 sliding layers).
    Forward reads the head counts from ``num_heads``/``num_kv_heads``, not the config: head pruning changes them per layer.
    """

    qk_norm = False

    @staticmethod
    def biases(config: PretrainedConfig) -> tuple[bool, bool]:
        """Whether (q/k/v, o_proj) carry a bias."""
        bias = bool(getattr(config, "attention_bias", False))
        return bias, bias

    def __init__(self, config: PretrainedConfig, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.num_key_value_heads
        if self.num_heads % self.num_kv_heads != 0:
            raise ValueError(
                f"num_attention_heads ({self.num_heads}) must be a multiple of num_key_value_heads ({self.num_kv_heads})."
            )
        qkv_bias, o_bias = self.biases(config)
        self.q_proj = nn.Linear(config.hidden_size, self.num_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, self.num_kv_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=o_bias)
        if self.qk_norm:
            self.q_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = LlamaRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.attention_dropout = config.attention_dropout

    def forward(
        self, hidden_states, position_embeddings, mask, cache, cache_position, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output, attention probabilities or None); the probabilities only with ``output_attentions``."""
        batch, length, _ = hidden_states.shape
        query = self.q_proj(hidden_states).view(batch, length, self.num_heads, self.head_dim)
        key = self.k_proj(hidden_states).view(batch, length, self.num_kv_heads, self.head_dim)
        value = self.v_proj(hidden_states).view(batch, length, self.num_kv_heads, self.head_dim)
        if self.qk_norm:
            query, key = self.q_norm(query), self.k_norm(key)
        cos, sin = position_embeddings
        query = apply_rotary(query.transpose(1, 2), cos, sin)
        key = apply_rotary(key.transpose(1, 2), cos, sin)
        value = value.transpose(1, 2)
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value, cache_position)
        dropout = self.attention_dropout if self.training else 0.0
        if output_attentions:  # the fused kernel never materialises the probabilities: multiply them out
            groups = self.num_heads // self.num_kv_heads
            key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
            context, probs = attention(query, key, value, mask, dropout_p=dropout, output_attentions=True)
            return self.o_proj(context), probs
        context = F.scaled_dot_product_attention(
            query, key, value, attn_mask=mask, dropout_p=dropout, enable_gqa=self.num_kv_heads != self.num_heads
        )
        return self.o_proj(context.transpose(1, 2).reshape(batch, length, -1)), None


class LlamaMLP(nn.Module):
    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__()
        bias = bool(getattr(config, "mlp_bias", False))
        self.gate_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.up_proj = nn.Linear(config.hidden_size, config.intermediate_size, bias=bias)
        self.down_proj = nn.Linear(config.intermediate_size, config.hidden_size, bias=bias)
        self.act_fn = get_activation(config.hidden_act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(self.act_fn(self.gate_proj(x)) * self.up_proj(x))


class LlamaDecoderLayer(nn.Module):
    attention_class = LlamaAttention

    def __init__(self, config: PretrainedConfig, layer_idx: int) -> None:
        super().__init__()
        self.self_attn = self.attention_class(config, layer_idx)
        self.mlp = LlamaMLP(config)
        self.input_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self, hidden_states, position_embeddings, mask, cache, cache_position, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.self_attn(
            self.input_layernorm(hidden_states), position_embeddings, mask, cache, cache_position, output_attentions
        )
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states)), probs


# --- base model and head -------------------------------------------------------------------------


class LlamaPreTrainedModel(PreTrainedModel):
    config_class = LlamaConfig
    base_model_prefix = "model"

    def kv_cache_shape(self) -> tuple[int, int | list[int], int]:
        """(layers, key/value heads, head size): what a KV cache for this model holds. The head count is a
        per-layer list when head pruning left layers with different counts."""
        base = getattr(self, self.base_model_prefix, self)
        kv_heads = [layer.self_attn.num_kv_heads for layer in base.layers]
        uniform = len(set(kv_heads)) == 1
        return len(kv_heads), kv_heads[0] if uniform else kv_heads, self.config.head_dim


class LlamaModel(LlamaPreTrainedModel):
    layer_class = LlamaDecoderLayer

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, getattr(config, "pad_token_id", None))
        self.layers = nn.ModuleList(self.layer_class(config, i) for i in range(config.num_hidden_layers))
        self.norm = LlamaRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LlamaRotaryEmbedding(config)
        self.layer_windows = self.sliding_windows(config)

    @staticmethod
    def sliding_windows(config: PretrainedConfig) -> list[int | None]:
        """Each layer's sliding window (None = full attention). Llama has none; Mistral and Qwen override."""
        return [None] * config.num_hidden_layers

    def get_input_embeddings(self) -> nn.Module:
        return self.embed_tokens

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        past_key_values=None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutputWithPast:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        length = inputs_embeds.shape[1]
        cache = past_key_values
        if cache is None and use_cache:
            cache = DynamicCache()
        cache_position, position_ids, keep, kv_length = decoder_inputs(
            cache, attention_mask, position_ids, cache_position, length, inputs_embeds.device
        )
        # One mask per distinct window, shared by the layers that use it.
        masks = {
            window: causal_mask(keep, cache_position, kv_length, inputs_embeds.dtype, window)
            for window in set(self.layer_windows)
        }
        position_embeddings = self.rotary_emb(inputs_embeds, position_ids)
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        hidden_states = inputs_embeds
        for layer, window in zip(self.layers, self.layer_windows):
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            hidden_states, probs = layer(
                hidden_states, position_embeddings, masks[window], cache, cache_position, output_attentions
            )
            if all_attentions is not None:
                all_attentions.append(probs)
        hidden_states = self.norm(hidden_states)
        if all_hidden is not None:  # as transformers: the last entry is the normalised output
            all_hidden.append(hidden_states)
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden_states, past_key_values=cache,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_attentions) if all_attentions is not None else None,
        )
        return out if return_dict else out.to_tuple()


class LlamaForCausalLM(CausalLM, LlamaPreTrainedModel):
    model_class = LlamaModel
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: PretrainedConfig) -> None:
        super().__init__(config)
        self.model = self.model_class(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
