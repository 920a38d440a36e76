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


@dataclass
class BaseModelOutput(ModelOutput):
    last_hidden_state: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class BaseModelOutputWithPooling(ModelOutput):
    last_hidden_state: Optional[Tensor] = None
    pooler_output: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class SequenceClassifierOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class TokenClassifierOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class MaskedLMOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class QuestionAnsweringModelOutput(ModelOutput):
    loss: Optional[Tensor] = None
    start_logits: Optional[Tensor] = None
    end_logits: Optional[Tensor] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class BaseModelOutputWithPast(ModelOutput):
    last_hidden_state: Optional[Tensor] = None
    past_key_values: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None


@dataclass
class CausalLMOutputWithPast(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    past_key_values: Optional[Any] = None
    hidden_states: Optional[tuple] = None
    attentions: Optional[tuple] = None

    @property
    def cache(self) -> Any:
        """transformers 5 calls the cache ``cache``; both names work."""
        return self.past_key_values


@dataclass
class Seq2SeqModelOutput(ModelOutput):
    last_hidden_state: Optional[Tensor] = None
    past_key_values: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Tensor] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None

    @property
    def cache(self) -> Any:
        """transformers 5 calls the cache ``cache``; both names work."""
        return self.past_key_values


@dataclass
class Seq2SeqLMOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    past_key_values: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Tensor] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None

    @property
    def cache(self) -> Any:
        return self.past_key_values


@dataclass
class Seq2SeqSequenceClassifierOutput(ModelOutput):
    loss: Optional[Tensor] = None
    logits: Optional[Tensor] = None
    past_key_values: Optional[Any] = None
    decoder_hidden_states: Optional[tuple] = None
    decoder_attentions: Optional[tuple] = None
    cross_attentions: Optional[tuple] = None
    encoder_last_hidden_state: Optional[Tensor] = None
    encoder_hidden_states: Optional[tuple] = None
    encoder_attentions: Optional[tuple] = None

    @property
    def cache(self) -> Any:
        return self.past_key_values
