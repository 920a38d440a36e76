"""RoBERTa: BERT's encoder with padding-aware position ids and its own classification and LM heads.

The encoder layers and the token-classification / question-answering heads are BERT's (bert.py) unchanged;
the base model sits under ``roberta`` as in transformers' checkpoints. Reads: config, embeddings, base model,
heads.
"""

from __future__ import annotations

import torch
from torch import nn

from ..outputs import BaseModelOutputWithPooling
from ..task_heads import MaskedLM, SequenceClassification
from .bert import (
    BertConfig,
    BertForQuestionAnswering,
    BertForTokenClassification,
    BertModel,
    BertPreTrainedModel,
    _classifier_dropout,
)


class RobertaConfig(BertConfig):
    model_type = "roberta"
    defaults = {
        **BertConfig.defaults,
        "vocab_size": 50265,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
    }


class RobertaEmbeddings(nn.Module):
    """BERT embeddings whose positions count real tokens only, starting after ``pad_token_id`` (fairseq's scheme):
    padding gets position ``pad_token_id`` and the first token ``pad_token_id + 1``, so the table's first
    ``pad_token_id + 1`` rows are never a real position."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.padding_idx = config.pad_token_id
        self.position_embeddings = nn.Embedding(
            config.max_position_embeddings, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.max_length = config.max_position_embeddings - config.pad_token_id - 1

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if position_ids is None:
            if input_ids is not None:
                is_token = input_ids.ne(self.padding_idx)
                position_ids = torch.cumsum(is_token, dim=1) * is_token + self.padding_idx
            else:  # no ids, so no way to tell padding: plain consecutive positions
                length = inputs_embeds.shape[1]
                position_ids = torch.arange(
                    self.padding_idx + 1, length + self.padding_idx + 1, device=inputs_embeds.device
                )[None]
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        if token_type_ids is None:
            types = self.token_type_embeddings.weight[0]  # type 0 everywhere, broadcast
        else:
            types = self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(inputs_embeds + types + self.position_embeddings(position_ids)))


class RobertaPreTrainedModel(BertPreTrainedModel):
    config_class = RobertaConfig
    base_model_prefix = "roberta"

    @classmethod
    def base_model_class(cls) -> type["RobertaModel"]:
        return RobertaModel


class RobertaModel(RobertaPreTrainedModel, BertModel):
    """Same as bert.BertModel except: RobertaEmbeddings."""

    embeddings_class = RobertaEmbeddings


# --- task heads ----------------------------------------------------------------------------------


class RobertaClassificationHead(nn.Module):
    """Sentence classifier on the first (<s>) token: dense, tanh, projection (RoBERTa has no pooler)."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.out_proj = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.dropout(features[:, 0])
        x = self.dropout(torch.tanh(self.dense(x)))
        return self.out_proj(x)


class RobertaLMHead(nn.Module):
    """dense, exact GELU (whatever hidden_act says, as in transformers), layer_norm, vocabulary projection.
    ``decoder.weight`` is tied to the word embeddings and ``decoder.bias`` to ``bias``."""

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.layer_norm(torch.nn.functional.gelu(self.dense(features))))


class RobertaForMaskedLM(MaskedLM, RobertaPreTrainedModel):
    _tied_weights_keys = {
        "lm_head.decoder.weight": "roberta.embeddings.word_embeddings.weight",
        "lm_head.decoder.bias": "lm_head.bias",
    }

    def __init__(self, config: RobertaConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=False)
        self.lm_head = RobertaLMHead(config)
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head.decoder

    def head(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.lm_head(encoded.last_hidden_state)


class RobertaForSequenceClassification(SequenceClassification, RobertaPreTrainedModel):
    def __init__(self, config: RobertaConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=False)
        self.classifier = RobertaClassificationHead(config)

    def head(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.classifier(encoded.last_hidden_state)


class RobertaForTokenClassification(RobertaPreTrainedModel, BertForTokenClassification):
    """Same as bert.BertForTokenClassification, on a RobertaModel under ``roberta``."""


class RobertaForQuestionAnswering(RobertaPreTrainedModel, BertForQuestionAnswering):
    """Same as bert.BertForQuestionAnswering, on a RobertaModel under ``roberta``."""
