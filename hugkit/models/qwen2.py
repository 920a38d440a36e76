"""Qwen2: a Llama with biases on the q/k/v projections (none on o_proj) and optional sliding-window layers.

The modules are Llama's (``hugkit.models.llama``); the attention differs only in which projections carry a bias.
"""

from __future__ import annotations

from ..config import PretrainedConfig
from .llama import LlamaAttention, LlamaConfig, LlamaDecoderLayer, LlamaForCausalLM, LlamaModel


class Qwen2Config(LlamaConfig):
    model_type = "qwen2"
    defaults = {
        "vocab_size": 151936,
        "hidden_size": 4096,
        "intermediate_size": 22016,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "head_dim": None,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "use_sliding_window": False,
        "sliding_window": 4096,
        "max_window_layers": 28,
        "layer_types": None,
        "attention_dropout": 0.0,
        "bos_token_id": None,
        "eos_token_id": None,
    }


def qwen_sliding_windows(config: PretrainedConfig) -> list[int | None]:
    """Per-layer windows from ``layer_types``, or (older configs) layers from ``max_window_layers`` on slide
    when ``use_sliding_window`` is set, as transformers derives them."""
    window = config.sliding_window if config.use_sliding_window else None
    layer_types = config.layer_types or [
        "sliding_attention" if window is not None and i >= config.max_window_layers else "full_attention"
        for i in range(config.num_hidden_layers)
    ]
    return [window if kind == "sliding_attention" else None for kind in layer_types[: config.num_hidden_layers]]


class Qwen2Attention(LlamaAttention):
    # Same as llama.LlamaAttention except: q/k/v always have a bias, o_proj never.
    @staticmethod
    def biases(config: PretrainedConfig) -> tuple[bool, bool]:
        return True, False


class Qwen2DecoderLayer(LlamaDecoderLayer):
    attention_class = Qwen2Attention


class Qwen2Model(LlamaModel):
    config_class = Qwen2Config
    layer_class = Qwen2DecoderLayer
    sliding_windows = staticmethod(qwen_sliding_windows)


class Qwen2ForCausalLM(LlamaForCausalLM):
    config_class = Qwen2Config
    model_class = Qwen2Model
