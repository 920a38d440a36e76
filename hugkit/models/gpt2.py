"""GPT-2: learned positions, pre-norm blocks, Conv1D projections stored as ``[in, out]`` (transformers' names).

Reads top to bottom: config, projections, attention, MLP, block, base model, language-model head.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..kv_cache import DynamicCache, causal_mask, decoder_inputs
from ..layers import get_activation
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutputWithPast
from ..task_heads import CausalLM

logger = logging.getLogger(__name__)


class GPT2Config(PretrainedConfig):
    model_type = "gpt2"
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
    }
    defaults = {
        "vocab_size": 50257,
        "n_positions": 1024,
        "n_embd": 768,
        "n_layer": 12,
        "n_head": 12,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.1,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "use_cache": True,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "tie_word_embeddings": True,
    }


class Conv1D(nn.Module):
    """A linear layer whose weight is stored transposed, ``[in, out]``, as the original GPT-2 checkpoints have it."""

    def __init__(self, out_features: int, in_features: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.zeros(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shape)


class GPT2Attention(nn.Module):
    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        if config.add_cross_attention:
            raise NotImplementedError("GPT-2 with cross-attention (add_cross_attention=True) is not supported.")
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"config.n_embd ({config.n_embd}) must be divisible by config.n_head ({config.n_head}).")
        self.layer_idx = layer_idx
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        # One factor for both optional scalings, as transformers folds them.
        self.scaling = self.head_dim**-0.5 if config.scale_attn_weights else 1.0
        if config.scale_attn_by_inverse_layer_idx:
            self.scaling /= float(layer_idx + 1)
        self.c_attn = Conv1D(3 * config.n_embd, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor, cache, cache_position: torch.Tensor,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(output, attention probabilities or None). Head counts come from ``num_heads`` (pruning changes it)."""
        batch, length, _ = hidden_states.shape
        width = self.num_heads * self.head_dim  # less than n_embd once heads are pruned
        query, key, value = self.c_attn(hidden_states).split(width, dim=2)
        shape = (batch, length, self.num_heads, self.head_dim)
        query = query.view(shape).transpose(1, 2)
        key = key.view(shape).transpose(1, 2)
        value = value.view(shape).transpose(1, 2)
        if cache is not None:
            key, value = cache.update(self.layer_idx, key, value, cache_position)
        dropout = self.attn_dropout.p if self.training else 0.0
        probs = None
        if output_attentions:  # the fused kernel never materialises the probabilities: multiply them out
            probs = torch.softmax(torch.matmul(query, key.transpose(-1, -2)) * self.scaling + mask, dim=-1)
            context = torch.matmul(F.dropout(probs, p=dropout) if dropout else probs, value)
        else:
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=mask, dropout_p=dropout, scale=self.scaling
            )
        context = context.transpose(1, 2).reshape(batch, length, width)
        return self.resid_dropout(self.c_proj(context)), probs


class GPT2MLP(nn.Module):
    def __init__(self, intermediate_size: int, config: GPT2Config) -> None:
        super().__init__()
        self.c_fc = Conv1D(intermediate_size, config.n_embd)
        self.c_proj = Conv1D(config.n_embd, intermediate_size)
        self.act = get_activation(config.activation_function)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden_states))))


class GPT2Block(nn.Module):
    """Pre-norm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, config: GPT2Config, layer_idx: int) -> None:
        super().__init__()
        inner = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = GPT2Attention(config, layer_idx)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = GPT2MLP(inner, config)

    def forward(
        self, hidden_states, mask, cache, cache_position, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.attn(self.ln_1(hidden_states), mask, cache, cache_position, output_attentions)
        hidden_states = hidden_states + attended
        return hidden_states + self.mlp(self.ln_2(hidden_states)), probs


class GPT2PreTrainedModel(PreTrainedModel):
    config_class = GPT2Config
    base_model_prefix = "transformer"
    # Old checkpoints store the causal-mask tables as buffers; they are rebuilt, never read.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"\.attn\.bias$", r"\.attn\.masked_bias$"]

    def kv_cache_shape(self) -> tuple[int, int | list[int], int]:
        """(layers, key/value heads, head size): what a KV cache for this model holds. The head count is a
        per-layer list when head pruning left layers with different counts."""
        base = getattr(self, self.base_model_prefix, self)
        heads = [block.attn.num_heads for block in base.h]
        uniform = len(set(heads)) == 1
        return len(heads), heads[0] if uniform else heads, self.config.n_embd // self.config.n_head


class GPT2Model(GPT2PreTrainedModel):
    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList(GPT2Block(config, i) for i in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)

    def get_input_embeddings(self) -> nn.Module:
        return self.wte

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
            inputs_embeds = self.wte(input_ids)
        batch, length = inputs_embeds.shape[:2]
        cache = past_key_values
        if cache is None and use_cache:
            cache = DynamicCache()
        cache_position, position_ids, keep, kv_length = decoder_inputs(
            cache, attention_mask, position_ids, cache_position, length, inputs_embeds.device
        )
        mask = causal_mask(keep, cache_position, kv_length, inputs_embeds.dtype)
        hidden_states = self.drop(inputs_embeds + self.wpe(position_ids))
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for block in self.h:
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            hidden_states, probs = block(hidden_states, mask, cache, cache_position, output_attentions)
            if all_attentions is not None:
                all_attentions.append(probs)
        hidden_states = self.ln_f(hidden_states)
        if all_hidden is not None:  # as transformers: the last entry is the normalised output
            all_hidden.append(hidden_states)
        out = BaseModelOutputWithPast(
            last_hidden_state=hidden_states, past_key_values=cache,
            hidden_states=tuple(all_hidden) if all_hidden is not None else None,
            attentions=tuple(all_attentions) if all_attentions is not None else None,
        )
        return out if return_dict else out.to_tuple()


class GPT2LMHeadModel(CausalLM, GPT2PreTrainedModel):
    has_learned_positions = True
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: GPT2Config) -> None:
        super().__init__(config)
        self.transformer = GPT2Model(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
