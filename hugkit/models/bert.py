"""BERT encoder and its task heads, with transformers' module names so checkpoints load as they are.

Reads top to bottom: config, embeddings, encoder layer, base model, task heads. RoBERTa and XLM-RoBERTa reuse
the encoder and heads from here (see roberta.py): the base model's class and checkpoint prefix come from the
``PreTrainedModel`` subclass, so one head class serves all three.
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
from ..outputs import BaseModelOutputWithPooling
from ..task_heads import EncoderModel, MaskedLM, QuestionAnswering, SequenceClassification, TokenClassification


class BertConfig(PretrainedConfig):
    model_type = "bert"
    defaults = {
        "vocab_size": 30522,
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0,
        "use_cache": True,
        "classifier_dropout": None,
        "is_decoder": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
    }


def check_supported(config: PretrainedConfig) -> None:
    """Refuse, with a clear message, the BERT variants this implementation does not cover."""
    kind = getattr(config, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise NotImplementedError(
            f"position_embedding_type={kind!r} is not supported by hugkit's {config.model_type} models; "
            "only 'absolute' position embeddings are."
        )
    if getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        raise NotImplementedError(
            f"{config.model_type} as a decoder (is_decoder / add_cross_attention) is not supported by hugkit; "
            "only the bidirectional encoder is."
        )
    if config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"hidden_size ({config.hidden_size}) must be divisible by num_attention_heads ({config.num_attention_heads})."
        )


class BertEmbeddings(nn.Module):
    """Word + token-type + absolute position embeddings, then LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.max_length = config.max_position_embeddings

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        # Defaults need no index tensors: type 0 is one row, positions 0..L-1 a slice, both broadcast over the batch.
        if token_type_ids is None:
            types = self.token_type_embeddings.weight[0]
        else:
            types = self.token_type_embeddings(token_type_ids)
        if position_ids is None:
            positions = self.position_embeddings.weight[: inputs_embeds.shape[1]]
        else:
            positions = self.position_embeddings(position_ids)
        return self.dropout(self.LayerNorm(inputs_embeds + types + positions))


class BertSelfAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        all_head_size = self.num_attention_heads * self.attention_head_size
        self.query = nn.Linear(config.hidden_size, all_head_size)
        self.key = nn.Linear(config.hidden_size, all_head_size)
        self.value = nn.Linear(config.hidden_size, all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``hidden_states`` is (batch, length, hidden), or (tokens, hidden) under ``packing``. With ``first_only``
        only position 0 queries (output (batch, 1, hidden)): all a first-token head reads of the last layer."""
        query = self.query(first_tokens(hidden_states, packing) if first_only else hidden_states)
        key = self.key(hidden_states)
        value = self.value(hidden_states)
        if packing is not None:
            key, value = packing.unpack(key), packing.unpack(value)
            if not first_only:
                query = packing.unpack(query)
        batch, length = key.shape[:2]
        heads, head_size = self.num_attention_heads, self.attention_head_size
        query = query.view(batch, -1, heads, head_size).transpose(1, 2)
        key = key.view(batch, length, heads, head_size).transpose(1, 2)
        value = value.view(batch, length, heads, head_size).transpose(1, 2)
        context, probs = attention(
            query, key, value, mask,
            dropout_p=self.dropout.p if self.training else 0.0,
            output_attentions=output_attentions,
        )
        if packing is not None and not first_only:
            context = packing.pack(context)
        return context, probs


class BertSelfOutput(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertAttention(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        context, probs = self.self(hidden_states, mask, output_attentions, packing, first_only)
        residual = first_tokens(hidden_states, packing) if first_only else hidden_states
        return self.output(context, residual), probs


class BertIntermediate(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertLayer(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        packing: PackedBatch | None = None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.attention(hidden_states, mask, output_attentions, packing, first_only)
        return self.output(self.intermediate(attended), attended), probs


class BertEncoder(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))

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
        for i, layer in enumerate(self.layer):
            hidden_states, probs = layer(hidden_states, mask, output_attentions, packing, first_token_only and i == last)
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            if all_attentions is not None:
                all_attentions.append(probs)
        return (
            hidden_states,
            tuple(all_hidden) if all_hidden is not None else None,
            tuple(all_attentions) if all_attentions is not None else None,
        )


class BertPooler(nn.Module):
    """tanh(dense(first token)): the sentence vector the NSP / classification heads were trained on."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertPreTrainedModel(PreTrainedModel):
    config_class = BertConfig
    base_model_prefix = "bert"
    # Token-classification / QA / MLM checkpoints have no pooler: loading one into a model with a pooler
    # initialises it afresh with a warning (as transformers does) rather than failing.
    _keys_optional_on_load = [r"(^|\.)pooler\."]

    @classmethod
    def base_model_class(cls) -> type["BertModel"]:
        return BertModel

    def _attach_base_model(self, add_pooling_layer: bool) -> None:
        """Heads keep the encoder under the checkpoint's prefix (``bert``, ``roberta``) so weights load unrenamed."""
        setattr(self, self.base_model_prefix, self.base_model_class()(self.config, add_pooling_layer=add_pooling_layer))

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value


class BertModel(EncoderModel, BertPreTrainedModel):
    embeddings_class = BertEmbeddings

    def __init__(self, config: BertConfig, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        check_supported(config)
        self.embeddings = self.embeddings_class(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None

    def encode(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        first_token_only: bool = False,
    ) -> BaseModelOutputWithPooling:
        """The encoder's output, pooled when the model has a pooler; what every head reads.

        ``first_token_only`` is for heads that read nothing but position 0 of the last layer: padding is then
        skipped in the linear layers and the last layer runs for position 0 alone, so the returned last hidden
        state is (batch, 1, hidden). Ignored when hidden states or attentions are requested.
        """
        check_inputs(
            input_ids, inputs_embeds, attention_mask,
            max_length=self.embeddings.max_length, hidden_size=self.config.hidden_size,
        )
        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, inputs_embeds)
        mask = padding_mask(attention_mask, embeddings.dtype)  # once per forward, shared by all layers
        first_token_only = first_token_only and not (output_hidden_states or output_attentions)
        packing = pack_for_first_token(attention_mask) if first_token_only and mask is not None else None
        hidden = packing.pack(embeddings) if packing is not None else embeddings
        hidden, all_hidden, all_attentions = self.encoder(
            hidden, mask, output_hidden_states, output_attentions, packing, first_token_only
        )
        return BaseModelOutputWithPooling(
            last_hidden_state=hidden,
            pooler_output=self.pooler(hidden) if self.pooler is not None else None,
            hidden_states=all_hidden,
            attentions=all_attentions,
        )


# --- task heads ----------------------------------------------------------------------------------


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Module):
    """Transform, then project onto the vocabulary. ``decoder.weight`` is tied to the word embeddings and
    ``decoder.bias`` to ``bias`` (the name checkpoints store it under), as transformers does."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.decoder = nn.Linear(config.hidden_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class BertOnlyMLMHead(nn.Module):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BertForMaskedLM(MaskedLM, BertPreTrainedModel):
    _tied_weights_keys = {
        "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
        "cls.predictions.decoder.bias": "cls.predictions.bias",
    }

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config)
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Linear:
        return self.cls.predictions.decoder

    def head(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.cls(encoded.last_hidden_state)


def _classifier_dropout(config: BertConfig) -> float:
    return config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob


class BertForSequenceClassification(SequenceClassification, BertPreTrainedModel):
    """Linear classifier on the pooled [CLS] vector."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=True)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def head(self, encoded: BaseModelOutputWithPooling) -> torch.Tensor:
        return self.classifier(self.dropout(encoded.pooler_output))


class BertForTokenClassification(TokenClassification, BertPreTrainedModel):
    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=False)
        self.dropout = nn.Dropout(_classifier_dropout(config))
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)


class BertForQuestionAnswering(QuestionAnswering, BertPreTrainedModel):
    """Start/end span scores per token (``qa_outputs`` has num_labels = 2 outputs)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__(config)
        self._attach_base_model(add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
