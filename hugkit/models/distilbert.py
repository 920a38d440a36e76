"""DistilBERT: a 6-layer distilled BERT without token types or pooler (transformers' parameter names).

Reads top to bottom: config, embeddings, transformer blocks, base model, task heads.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import PretrainedConfig
from ..layers import (
    PackedBatch,
    attention,
    check_inputs,
    first_tokens,
    get_activation,
    pack_for_first_token,
    padding_mask,
)
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, QuestionAnsweringModelOutput
from ..task_heads import (
    MaskedLM,
    QuestionAnswering,
    SequenceClassification,
    TokenClassification,
    resolve_flags,
    span_labels,
)


class DistilBertConfig(PretrainedConfig):
    model_type = "distilbert"
    attribute_map = {"hidden_size": "dim", "num_attention_heads": "n_heads", "num_hidden_layers": "n_layers"}
    defaults = {
        "vocab_size": 30522,
        "max_position_embeddings": 512,
        "sinusoidal_pos_embds": False,
        "n_layers": 6,
        "n_heads": 12,
        "dim": 768,
        "hidden_dim": 4 * 768,
        "dropout": 0.1,
        "attention_dropout": 0.1,
        "activation": "gelu",
        "initializer_range": 0.02,
        "qa_dropout": 0.1,
        "seq_classif_dropout": 0.2,
        "pad_token_id": 0,
        "tie_word_embeddings": True,
    }


def _sinusoidal_table(n_pos: int, dim: int) -> torch.Tensor:
    """The fixed sin/cos position table used when ``sinusoidal_pos_embds`` is set (computed in float64 like the original)."""
    position = torch.arange(n_pos, dtype=torch.float64)[:, None]
    exponent = (2 * (torch.arange(dim) // 2)).to(torch.float64) / dim
    angles = position / torch.pow(10000.0, exponent)
    table = torch.empty(n_pos, dim, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.float()


class Embeddings(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.dim, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.dim)
        self.LayerNorm = nn.LayerNorm(config.dim, eps=1e-12)
        self.dropout = nn.Dropout(config.dropout)
        if config.sinusoidal_pos_embds and not self.position_embeddings.weight.is_meta:
            # Checkpoints store the table; a model built from a config computes it.
            with torch.no_grad():
                self.position_embeddings.weight.copy_(_sinusoidal_table(config.max_position_embeddings, config.dim))
            self.position_embeddings.weight.requires_grad_(False)

    def forward(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, position_ids: torch.Tensor | None
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        if position_ids is None:
            # Positions 0..L-1: a slice of the table, broadcast over the batch (no index tensor to build).
            positions = self.position_embeddings.weight[: inputs_embeds.shape[1]]
        else:
            positions = self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(inputs_embeds + positions))


class DistilBertSelfAttention(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        if config.dim % config.n_heads != 0:
            raise ValueError(f"config.dim ({config.dim}) must be divisible by config.n_heads ({config.n_heads}).")
        self.n_heads = config.n_heads
        self.head_dim = config.dim // config.n_heads
        self.q_lin = nn.Linear(config.dim, config.dim)
        self.k_lin = nn.Linear(config.dim, config.dim)
        self.v_lin = nn.Linear(config.dim, config.dim)
        self.out_lin = nn.Linear(config.dim, config.dim)
        self.dropout = nn.Dropout(config.attention_dropout)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Same contract as bert.BertSelfAttention.forward (packed rows, position-0-only queries), plus out_lin."""
        query = self.q_lin(first_tokens(hidden_states, packing) if first_only else hidden_states)
        key = self.k_lin(hidden_states)
        value = self.v_lin(hidden_states)
        if packing is not None:
            key, value = packing.unpack(key), packing.unpack(value)
            if not first_only:
                query = packing.unpack(query)
        batch, length = key.shape[:2]
        query = query.view(batch, -1, self.n_heads, self.head_dim).transpose(1, 2)
        key = key.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        value = value.view(batch, length, self.n_heads, self.head_dim).transpose(1, 2)
        context, probs = attention(
            query, key, value, mask,
            dropout_p=self.dropout.p if self.training else 0.0,
            output_attentions=output_attentions,
        )
        if packing is not None and not first_only:
            context = packing.pack(context)
        return self.out_lin(context), probs


class FFN(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.lin1 = nn.Linear(config.dim, config.hidden_dim)
        self.lin2 = nn.Linear(config.hidden_dim, config.dim)
        self.activation = get_activation(config.activation)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.lin2(self.activation(self.lin1(hidden_states))))


class TransformerBlock(nn.Module):
    """Post-norm block: attention, add & norm, feed-forward, add & norm."""

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.attention = DistilBertSelfAttention(config)
        self.sa_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.ffn = FFN(config)
        self.output_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.attention(hidden_states, mask, output_attentions, packing, first_only)
        residual = first_tokens(hidden_states, packing) if first_only else hidden_states
        hidden_states = self.sa_layer_norm(attended + residual)
        hidden_states = self.output_layer_norm(self.ffn(hidden_states) + hidden_states)
        return hidden_states, probs


class Transformer(nn.Module):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        all_hidden = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        last = len(self.layer) - 1
        for i, block in enumerate(self.layer):
            hidden_states, probs = block(hidden_states, mask, output_attentions, packing, first_token_only and i == last)
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            if all_attentions is not None:
                all_attentions.append(probs)
        return (
            hidden_states,
            tuple(all_hidden) if all_hidden is not None else None,
            tuple(all_attentions) if all_attentions is not None else None,
        )


class DistilBertPreTrainedModel(PreTrainedModel):
    config_class = DistilBertConfig
    base_model_prefix = "distilbert"

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value


class DistilBertModel(DistilBertPreTrainedModel):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.embeddings = Embeddings(config)
        self.transformer = Transformer(config)

    def get_position_embeddings(self) -> nn.Embedding:
        return self.embeddings.position_embeddings

    def encode(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        first_token_only: bool = False,
    ) -> BaseModelOutput:
        """The encoder's output; what every head reads.

        ``first_token_only``: as in bert.BertModel.encode (padding skipped, last layer for position 0 alone).
        """
        config = self.config
        check_inputs(
            input_ids, inputs_embeds, attention_mask, max_length=config.max_position_embeddings, hidden_size=config.dim
        )
        embeddings = self.embeddings(input_ids, inputs_embeds, position_ids)
        mask = padding_mask(attention_mask, embeddings.dtype)  # once per forward, shared by all layers
        first_token_only = first_token_only and not (output_hidden_states or output_attentions)
        packing = pack_for_first_token(attention_mask) if first_token_only and mask is not None else None
        hidden = packing.pack(embeddings) if packing is not None else embeddings
        hidden, all_hidden, all_attentions = self.transformer(
            hidden, mask, output_hidden_states, output_attentions, packing, first_token_only
        )
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,  # accepted and ignored: DistilBERT has no segment embeddings
    ) -> BaseModelOutput | tuple:
        output_hidden_states, output_attentions, return_dict = resolve_flags(
            self.config, output_hidden_states, output_attentions, return_dict
        )
        out = self.encode(
            input_ids, attention_mask, inputs_embeds, position_ids, output_hidden_states, output_attentions
        )
        return out if return_dict else out.to_tuple()


# --- task heads ----------------------------------------------------------------------------------
# DistilBERT's argument order differs from BERT's (position_ids after the labels, token_type_ids last and ignored),
# so its heads bring their own forward; the rest of the plumbing is hugkit.task_heads'.


def _forward(
    self,
    input_ids: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    inputs_embeds: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    position_ids: torch.Tensor | None = None,
    output_attentions: bool | None = None,
    output_hidden_states: bool | None = None,
    return_dict: bool | None = None,
    token_type_ids: torch.Tensor | None = None,  # ignored, as in DistilBertModel
):
    """forward of the masked-LM, sequence- and token-classification heads, in transformers' DistilBERT order."""
    inputs = dict(
        input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, position_ids=position_ids
    )
    return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)


class DistilBertForMaskedLM(MaskedLM, DistilBertPreTrainedModel):
    _tied_weights_keys = {"vocab_projector.weight": "distilbert.embeddings.word_embeddings.weight"}
    forward = _forward

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.activation = get_activation(config.activation)
        self.distilbert = DistilBertModel(config)
        self.vocab_transform = nn.Linear(config.dim, config.dim)
        self.vocab_layer_norm = nn.LayerNorm(config.dim, eps=1e-12)
        self.vocab_projector = nn.Linear(config.dim, config.vocab_size)
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Linear:
        return self.vocab_projector

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        hidden = self.vocab_layer_norm(self.activation(self.vocab_transform(encoded.last_hidden_state)))
        return self.vocab_projector(hidden)


class DistilBertForSequenceClassification(SequenceClassification, DistilBertPreTrainedModel):
    forward = _forward

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.pre_classifier = nn.Linear(config.dim, config.dim)
        self.classifier = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.seq_classif_dropout)

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        pooled = torch.relu(self.pre_classifier(encoded.last_hidden_state[:, 0]))  # first ([CLS]) token
        return self.classifier(self.dropout(pooled))


class DistilBertForTokenClassification(TokenClassification, DistilBertPreTrainedModel):
    forward = _forward

    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.dim, config.num_labels)


class DistilBertForQuestionAnswering(QuestionAnswering, DistilBertPreTrainedModel):
    def __init__(self, config: DistilBertConfig) -> None:
        super().__init__(config)
        self.distilbert = DistilBertModel(config)
        self.qa_outputs = nn.Linear(config.dim, config.num_labels)
        self.dropout = nn.Dropout(config.qa_dropout)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        token_type_ids: torch.Tensor | None = None,  # ignored, as in DistilBertModel
    ) -> QuestionAnsweringModelOutput | tuple:
        inputs = dict(
            input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, position_ids=position_ids
        )
        labels = span_labels(start_positions, end_positions)
        return self.run_head(inputs, labels, output_attentions, output_hidden_states, return_dict)

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        return self.qa_outputs(self.dropout(encoded.last_hidden_state))
