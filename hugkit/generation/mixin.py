"""GenerationMixin: what every hugkit causal LM shares on top of its architecture.

``generate``/``generate_tokens`` (the loop lives in ``loop.py``), the model's ``generation_config`` (from
``generation_config.json`` when the checkpoint has one, else from the model config), and the language-model output
(logits of the kept positions, optional shifted cross-entropy loss).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from ..config import HUB_KWARGS
from ..outputs import CausalLMOutputWithPast
from .config import GENERATION_CONFIG_NAME, GenerationConfig


class GenerationMixin:
    # GPT-2 style models cannot index positions past max_position_embeddings; RoPE models can (with a warning).
    has_learned_positions = False

    def __init__(self, config, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.generation_config = GenerationConfig.from_model_config(config)

    # --- loading and saving -----------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *args: Any, **kwargs: Any):
        hub_kwargs = {k: kwargs[k] for k in HUB_KWARGS if k in kwargs}
        model = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        from ..hub import resolve

        folder = Path(resolve(pretrained_model_name_or_path, **hub_kwargs))
        if (folder / GENERATION_CONFIG_NAME).is_file():
            model.generation_config = GenerationConfig.from_pretrained(folder)
        return model

    def save_pretrained(self, save_directory: str | os.PathLike, **kwargs: Any) -> None:
        super().save_pretrained(save_directory, **kwargs)
        self.generation_config.save_pretrained(save_directory)

    # --- outputs ----------------------------------------------------------------------------------
    def _lm_output(self, base_out, labels: torch.Tensor | None, logits_to_keep: int, return_dict: bool):
        hidden_states = base_out.last_hidden_state
        if logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]
        logits = self.lm_head(hidden_states)
        loss = None
        if labels is not None:
            # Predict token t+1 from position t; -100 labels are ignored (transformers' convention).
            shifted = logits[:, :-1].float().reshape(-1, logits.shape[-1])
            loss = F.cross_entropy(shifted, labels[:, 1:].reshape(-1).to(logits.device), ignore_index=-100)
        out = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=base_out.past_key_values)
        return out if return_dict else out.to_tuple()

    # --- generation -------------------------------------------------------------------------------
    def generate(
        self,
        inputs: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        *,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        streamer: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        """transformers' ``generate`` for greedy and sampling decoding: prompt + new tokens as a LongTensor."""
        from .loop import generate

        if inputs is not None and input_ids is not None:
            raise ValueError("Pass the prompt once: either as the first argument or as input_ids=, not both.")
        prompt = inputs if inputs is not None else input_ids
        if prompt is None:
            raise ValueError("generate() needs a prompt: input_ids of shape (batch, length), e.g. from tokenizer(..., return_tensors='pt').")
        return generate(self, prompt, attention_mask, generation_config, streamer=streamer, **kwargs)

    def generate_tokens(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> Iterator[torch.Tensor]:
        """Yield each step's new token ids, ``(batch,)``; see ``hugkit.generation.generate_tokens``."""
        from .loop import generate_tokens

        return generate_tokens(self, input_ids, attention_mask, generation_config, **kwargs)
