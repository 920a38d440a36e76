"""Mistral: a Llama with a sliding attention window on every layer (and a different config default set).

The modules are Llama's (``hugkit.models.llama``); only the config and the per-layer window differ.
"""

from __future__ import annotations

from ..config import PretrainedConfig
from .llama import LlamaConfig, LlamaForCausalLM, LlamaModel


class MistralConfig(LlamaConfig):
    model_type = "mistral"
    defaults = {
        "vocab_size": 32000,
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": None,
        "hidden_act": "silu",
        "max_position_embeddings": 4096 * 32,
        "initializer_range": 0.02,
        "rms_norm_eps": 1e-6,
        "use_cache": True,
        "bos_token_id": 1,
        "eos_token_id": 2,
        "tie_word_embeddings": False,
        "rope_parameters": None,
        "sliding_window": 4096,
        "attention_dropout": 0.0,
    }


class MistralModel(LlamaModel):
    config_class = MistralConfig

    @staticmethod
    def sliding_windows(config: PretrainedConfig) -> list[int | None]:
        # A query sees itself and the sliding_window - 1 tokens before it (transformers' window rule).
        return [config.sliding_window] * config.num_hidden_layers


class MistralForCausalLM(LlamaForCausalLM):
    config_class = MistralConfig
    model_class = MistralModel
