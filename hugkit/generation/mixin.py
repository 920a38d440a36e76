"""GenerationMixin: what every hugkit generating model (causal LMs, encoder-decoder LMs) shares on top of its
architecture.

``generate``/``generate_tokens`` (the loop lives in ``loop.py``), ``compute_transition_scores``, the model's
``generation_config`` (from ``generation_config.json`` when the checkpoint has one, else from the model config), and
the causal language-model output (logits of the kept positions, optional shifted cross-entropy loss).
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
        logits_processor: Any = None,
        stopping_criteria: Any = None,
        prefix_allowed_tokens_fn: Any = None,
        *,
        streamer: Any = None,
        **kwargs: Any,
    ):
        """transformers' ``generate`` (greedy, sampling, beam search) for decoder-only and encoder-decoder models.

        ``inputs`` (or ``input_ids=``) is the prompt of a decoder-only model, or the encoder's input of an
        encoder-decoder (``input_features=`` for speech; ``encoder_outputs=`` to skip the encoder;
        ``decoder_input_ids=`` for a decoder prompt). Other keyword arguments are ``attention_mask`` and
        GenerationConfig fields. Returns the sequences as a LongTensor, or a ``Generate*Output`` with
        ``return_dict_in_generate=True``.
        """
        from .loop import generate

        return generate(
            self, inputs, generation_config=generation_config, streamer=streamer, logits_processor=logits_processor,
            stopping_criteria=stopping_criteria, prefix_allowed_tokens_fn=prefix_allowed_tokens_fn, **kwargs,
        )

    def generate_tokens(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        **kwargs: Any,
    ) -> Iterator[torch.Tensor]:
        """Yield each step's new token ids, ``(rows,)``; see ``hugkit.generation.generate_tokens``."""
        from .loop import generate_tokens

        return generate_tokens(self, input_ids, attention_mask, generation_config, **kwargs)

    def compute_transition_scores(
        self,
        sequences: torch.Tensor,
        scores: tuple[torch.Tensor, ...],
        beam_indices: torch.Tensor | None = None,
        normalize_logits: bool = False,
    ) -> torch.Tensor:
        """transformers' ``compute_transition_scores``: the score of each generated token, ``(rows, steps)``.

        ``scores`` is ``generate(..., return_dict_in_generate=True, output_scores=True).scores``; for beam search
        pass its ``beam_indices`` too. ``normalize_logits`` turns each step's scores into log-probabilities first.
        Positions after a beam finished (beam index -1) score 0.
        """
        if not scores:
            raise ValueError(
                "scores is empty: generate with return_dict_in_generate=True, output_scores=True and pass "
                "output.scores."
            )
        vocab = scores[0].shape[-1]
        if beam_indices is None:  # greedy/sampling: row i always continues row i
            beam_indices = torch.arange(scores[0].shape[0], device=sequences.device)[:, None].expand(-1, len(scores))
        stacked = torch.stack(scores).reshape(len(scores), -1).transpose(0, 1)  # (rows * vocab, steps)
        if normalize_logits:
            stacked = stacked.reshape(-1, vocab, stacked.shape[-1])
            stacked = torch.nn.functional.log_softmax(stacked, dim=1).reshape(-1, stacked.shape[-1])
        finished = beam_indices < 0
        steps = int((~finished).long().sum(-1).max())
        beam_indices = beam_indices.clone()[:, :steps]
        finished = finished[:, :steps]
        beam_indices[finished] = 0
        tokens = sequences[:, sequences.shape[-1] - steps :]
        transition = stacked.gather(0, tokens + beam_indices * vocab)
        transition[finished] = 0
        return transition
