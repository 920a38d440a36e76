"""Model outputs: dataclasses readable by attribute (``out.logits``), key (``out["logits"]``) or index (``out[0]``).

Like transformers, fields that are None are left out of key and index access, so ``out[0]`` is the first
field that was actually computed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Iterator, Optional

Tensor = Any  # torch.Tensor; kept loose so this module imports without torch


class ModelOutput:
    def _present(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self) if getattr(self, f.name) is not None]

    def keys(self) -> list[str]:
        return [name for name, _ in self._present()]

    def values(self) -> list[Any]:
        return [value for _, value in self._present()]

    def items(self) -> list[tuple[str, Any]]:
        return self._present()

    def to_tuple(self) -> tuple[Any, ...]:
        return tuple(self.values())

    def __getitem__(self, key: str | int | slice) -> Any:
        if isinstance(key, str):
            if key not in self.keys():
                raise KeyError(f"{key!r} is not in this output; available: {self.keys()}")
            return getattr(self, key)
        return self.to_tuple()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._present())

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self.keys() else default


# --- field groups ----------------------------------------------------------------------------------
# Each output below is a leading group (what its head computed) followed by a trailing group (the per-layer
# tensors, and the cache). Dataclass fields are ordered base by base from the *last* base to the first, so a class
# names its trailing group first: ``class SequenceClassifierOutput(_LayerStates, _LossAndLogits)`` has the fields
# loss, logits, hidden_states, attentions. That order is transformers' and index access depends on it, so each
# class spells its fields out in its docstring (and tests/test_outputs.py checks them against transformers).


@dataclass
class _LastHiddenState(ModelOutput):
    last_hidden_state: Optional[Tensor] = None


@dataclass
class _Pooled(_LastHiddenState):
    pooler_output: Optional[Tensor] = None


@dataclass
class _LossAndLogits(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None


@dataclass
class _LossAndSpanLogits(ModelOutput):
    loss: Optional[Tensor] = None
    start_logits: Optional[Tensor] = None
    end_logits: Optional[Tensor] = None


@dataclass
class _LayerStates(ModelOutput):
    """Every layer's hidden states and attention probabilities (None unless asked for)."""

    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class _Cache(ModelOutput):
    past_key_values: Optional[Any] = None

    @property
    def cache(self) -> Any:
        """transformers 5 calls the cache ``cache``; both names work."""
        return self.past_key_values


@dataclass
class _CacheAndLayerStates(_Cache):
    """What a decoder-only model's outputs end with: the cache, then the per-layer tensors."""

    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class _Seq2SeqStates(_Cache):
    """What an encoder-decoder model's outputs end with: the decoder's cache and per-layer tensors, then the
    encoder's output and per-layer tensors."""

    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Tensor] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None

    def seq2seq_states(self) -> dict[str, Any]:
        """These fields by name: what a head's output carries over from its base model's."""
        return {f.name: getattr(self, f.name) for f in fields(_Seq2SeqStates)}


# --- encoders --------------------------------------------------------------------------------------


@dataclass
class BaseModelOutput(_LayerStates, _LastHiddenState):
    """last_hidden_state, hidden_states, attentions."""


@dataclass
class BaseModelOutputWithPooling(_LayerStates, _Pooled):
    """last_hidden_state, pooler_output, hidden_states, attentions."""


@dataclass
class SequenceClassifierOutput(_LayerStates, _LossAndLogits):
    """loss, logits, hidden_states, attentions."""


@dataclass
class TokenClassifierOutput(_LayerStates, _LossAndLogits):
    """loss, logits, hidden_states, attentions."""


@dataclass
class MaskedLMOutput(_LayerStates, _LossAndLogits):
    """loss, logits, hidden_states, attentions."""


@dataclass
class QuestionAnsweringModelOutput(_LayerStates, _LossAndSpanLogits):
    """loss, start_logits, end_logits, hidden_states, attentions."""


# --- decoders --------------------------------------------------------------------------------------


@dataclass
class BaseModelOutputWithPast(_CacheAndLayerStates, _LastHiddenState):
    """last_hidden_state, past_key_values, hidden_states, attentions."""


@dataclass
class BaseModelOutputWithPastAndCrossAttentions(_CacheAndLayerStates, _LastHiddenState):
    """last_hidden_state, past_key_values, hidden_states, attentions, cross_attentions: what an encoder-decoder's
    decoder (``model.get_decoder()(...)``) returns."""

    cross_attentions: Optional[tuple] = None


@dataclass
class CausalLMOutputWithPast(_CacheAndLayerStates, _LossAndLogits):
    """loss, logits, past_key_values, hidden_states, attentions."""


# --- encoder-decoders ------------------------------------------------------------------------------


@dataclass
class Seq2SeqModelOutput(_Seq2SeqStates, _LastHiddenState):
    """last_hidden_state, past_key_values, decoder_hidden_states, decoder_attentions, cross_attentions,
    encoder_last_hidden_state, encoder_hidden_states, encoder_attentions."""


@dataclass
class Seq2SeqLMOutput(_Seq2SeqStates, _LossAndLogits):
    """loss, logits, then the encoder-decoder fields of Seq2SeqModelOutput (past_key_values ... encoder_attentions)."""


@dataclass
class Seq2SeqSequenceClassifierOutput(_Seq2SeqStates, _LossAndLogits):
    """loss, logits, then the encoder-decoder fields of Seq2SeqModelOutput (past_key_values ... encoder_attentions)."""
