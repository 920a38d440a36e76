"""Qwen3: a Llama with RMSNorm on each query and key head (before RoPE) and optional sliding-window layers.

The modules are Llama's (``hugkit.models.llama``); Qwen3 turns on the per-head q/k norm and takes Qwen2's
sliding-window rule.
"""

from __future__ import annotations

from .llama import LlamaAttention, LlamaConfig, LlamaDecoderLayer, LlamaForCausalLM, LlamaModel
from .qwen2 import qwen_sliding_windows


class Qwen3Config(LlamaConfig):
    model_type = "qwen3"
    defaults = {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": 128,  # not hidden_size // heads: Qwen3 sets it independently
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "attention_bias": False,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
        "layer_types": None,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": None,
    }


class Qwen3Attention(LlamaAttention):
    # Same as llama.LlamaAttention except: q_norm/k_norm (RMSNorm over head_dim) on each head before RoPE.
    qk_norm = True


class Qwen3DecoderLayer(LlamaDecoderLayer):
    attention_class = Qwen3Attention


class Qwen3Model(LlamaModel):
    config_class = Qwen3Config
    layer_class = Qwen3DecoderLayer
    sliding_windows = staticmethod(qwen_sliding_windows)


class Qwen3ForCausalLM(LlamaForCausalLM):
    config_class = Qwen3Config
    model_class = Qwen3Model
