"""What ``generate(..., return_dict_in_generate=True)`` returns: transformers' four output classes, field for field.

Like every hugkit output (``hugkit.outputs.ModelOutput``) they read by attribute, key or index, and fields left None
are skipped by key and index access. transformers 5 calls the cache field ``cache`` (``past_key_values`` being its
deprecated name); here the field is ``past_key_values``, as in hugkit's model outputs, and both names read it.

- ``sequences``: the prompt (the decoder prompt for an encoder-decoder, its start token included) plus the new tokens;
- ``scores``: with ``output_scores``, one ``(rows, vocab)`` tensor per step, the processed scores the token was
  chosen from (for beam search, the log-probabilities of every beam's continuations);
- ``logits``: with ``output_logits``, the raw logits of each step;
- ``sequences_scores`` and ``beam_indices`` (beam search): each returned sequence's length-normalised score and
  which beam each of its tokens came from;
- ``past_key_values``: the KV cache the generation filled;
- encoder-decoders: ``encoder_hidden_states``/``encoder_attentions`` when asked for (not supported yet: None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

from ..outputs import ModelOutput

Tensor = Any  # torch.Tensor; kept loose so this module imports without torch


class _CacheAlias:
    @property
    def cache(self) -> Any:
        """transformers 5 calls the cache ``cache``; both names work."""
        return self.past_key_values


@dataclass
class GenerateDecoderOnlyOutput(_CacheAlias, ModelOutput):
    """sequences, scores, logits, attentions, hidden_states, past_key_values."""

    sequences: Optional[Tensor] = None
    scores: Optional[tuple] = None
    logits: Optional[tuple] = None
    attentions: Optional[tuple] = None
    hidden_states: Optional[tuple] = None
    past_key_values: Optional[Any] = None


@dataclass
class GenerateEncoderDecoderOutput(_CacheAlias, ModelOutput):
    """sequences, scores, logits, encoder_attentions, encoder_hidden_states, decoder_attentions, cross_attentions,
    decoder_hidden_states, past_key_values."""

    sequences: Optional[Tensor] = None
    scores: Optional[tuple] = None
    logits: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None
    encoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    decoder_hidden_states: Optional[tuple] = None
    past_key_values: Optional[Any] = None


@dataclass
class GenerateBeamDecoderOnlyOutput(_CacheAlias, ModelOutput):
    """sequences, sequences_scores, scores, logits, beam_indices, attentions, hidden_states, past_key_values."""

    sequences: Optional[Tensor] = None
    sequences_scores: Optional[Tensor] = None
    scores: Optional[tuple] = None
    logits: Optional[tuple] = None
    beam_indices: Optional[Tensor] = None
    attentions: Optional[tuple] = None
    hidden_states: Optional[tuple] = None
    past_key_values: Optional[Any] = None


@dataclass
class GenerateBeamEncoderDecoderOutput(_CacheAlias, ModelOutput):
    """sequences, sequences_scores, scores, logits, beam_indices, encoder_attentions, encoder_hidden_states,
    decoder_attentions, cross_attentions, decoder_hidden_states, past_key_values."""

    sequences: Optional[Tensor] = None
    sequences_scores: Optional[Tensor] = None
    scores: Optional[tuple] = None
    logits: Optional[tuple] = None
    beam_indices: Optional[Tensor] = None
    encoder_attentions: Optional[tuple] = None
    encoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    decoder_hidden_states: Optional[tuple] = None
    past_key_values: Optional[Any] = None


# transformers' aliases
GenerateNonBeamOutput = (GenerateDecoderOnlyOutput, GenerateEncoderDecoderOutput)
GenerateBeamOutput = (GenerateBeamDecoderOnlyOutput, GenerateBeamEncoderDecoderOutput)
