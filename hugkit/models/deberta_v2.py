"""DeBERTa-v2 / v3: a BERT-like encoder with disentangled attention (content-to-position and position-to-content
scores over log-bucketed relative positions), with transformers' module names so checkpoints load as they are.

Reads top to bottom: config, relative positions, embeddings, attention, layer, conv layer, encoder, base model,
task heads. The relative-position index is built once per sequence length and reused by every layer and call.
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..layers import check_inputs, get_activation
from ..loading import iter_checkpoint
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput
from ..task_heads import (
    EncoderModel,
    MaskedLM,
    QuestionAnswering,
    SequenceClassification,
    TokenClassification,
    sequence_classification_loss,
)

logger = logging.getLogger(__name__)


class DebertaV2Config(PretrainedConfig):
    model_type = "deberta-v2"
    defaults = {
        "vocab_size": 128100,
        "hidden_size": 1536,
        "num_hidden_layers": 24,
        "num_attention_heads": 24,
        "intermediate_size": 6144,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": 512,
        "type_vocab_size": 0,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-7,
        "relative_attention": False,
        "max_relative_positions": -1,
        "position_buckets": -1,
        "pad_token_id": 0,
        "position_biased_input": True,
        "pos_att_type": None,
        "share_att_key": False,
        "norm_rel_ebd": "none",
        "pooler_dropout": 0.0,
        "pooler_hidden_act": "gelu",
        "legacy": True,
        "tie_word_embeddings": True,
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if isinstance(self.pos_att_type, str):  # old configs write "p2c|c2p"
            self.pos_att_type = [part.strip() for part in self.pos_att_type.lower().split("|")]
        if getattr(self, "pooler_hidden_size", None) is None:
            self.pooler_hidden_size = self.hidden_size
        if getattr(self, "embedding_size", None) is None:
            self.embedding_size = self.hidden_size


def _check_supported(config: DebertaV2Config) -> None:
    unknown = set(config.pos_att_type or ()) - {"c2p", "p2c"}
    if unknown:
        raise ValueError(f"pos_att_type may contain 'c2p' and 'p2c'; found {sorted(unknown)} in the config.")
    head_size = getattr(config, "attention_head_size", None)
    if head_size is None and config.hidden_size % config.num_attention_heads:
        raise ValueError(
            f"hidden_size ({config.hidden_size}) must be divisible by num_attention_heads ({config.num_attention_heads})."
        )


# --- relative positions --------------------------------------------------------------------------


def make_log_bucket_position(relative_pos: torch.Tensor, bucket_size: int, max_position: int) -> torch.Tensor:
    """Distances under bucket_size/2 keep their value; longer ones share logarithmically wider buckets.

    The float steps (float32 log and ceil) are those of the original code, so bucket edges land identically.
    """
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    near = (relative_pos < mid) & (relative_pos > -mid)
    abs_pos = torch.where(near, torch.full_like(relative_pos, mid - 1), relative_pos.abs())
    log_pos = torch.ceil(torch.log(abs_pos / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    return torch.where(abs_pos <= mid, relative_pos.to(log_pos.dtype), log_pos * sign).long()


class RelativePositions:
    """Index of the relative-embedding row each (query, key) pair reads, for one sequence length.

    ``index[q, k] = clamp(bucket(q - k) + span, 0, 2 * span - 1)`` serves both score terms: content-to-position
    reads ``pos_key[index[q, k]]`` and position-to-content ``pos_query[index[q, k]]`` (the latter is the original
    code's ``-bucket(k - q)``, equal because bucketing is odd). Only the rows ``first..first+count`` occur, so the
    embeddings are sliced to them and ``index`` is relative to ``first``.
    """

    def __init__(self, length: int, span: int, buckets: int, max_relative: int, device: torch.device) -> None:
        ids = torch.arange(length, device=device)
        relative = ids[:, None] - ids[None, :]
        if buckets > 0 and max_relative > 0:
            relative = make_log_bucket_position(relative, buckets, max_relative)
        index = torch.clamp(relative + span, 0, 2 * span - 1)
        self.first = int(index.min())
        self.count = int(index.max()) - self.first + 1
        self.index = index - self.first


class DebertaV2Embeddings(nn.Module):
    """Word (+ absolute position if position_biased_input) (+ token type) embeddings, projected to hidden_size
    when embedding_size differs, LayerNorm, then padding zeroed."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.embedding_size = config.embedding_size
        self.word_embeddings = nn.Embedding(config.vocab_size, self.embedding_size, padding_idx=config.pad_token_id)
        self.position_biased_input = config.position_biased_input
        self.position_embeddings = (
            nn.Embedding(config.max_position_embeddings, self.embedding_size) if self.position_biased_input else None
        )
        self.token_type_embeddings = (
            nn.Embedding(config.type_vocab_size, self.embedding_size) if config.type_vocab_size > 0 else None
        )
        self.embed_proj = (
            nn.Linear(self.embedding_size, config.hidden_size, bias=False)
            if self.embedding_size != config.hidden_size else None
        )
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        input_ids: torch.Tensor | None,
        token_type_ids: torch.Tensor | None,
        position_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        inputs_embeds: torch.Tensor | None,
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.word_embeddings(input_ids)
        embeddings = inputs_embeds
        if self.position_embeddings is not None:
            if position_ids is None:
                embeddings = embeddings + self.position_embeddings.weight[: inputs_embeds.shape[1]]
            else:
                embeddings = embeddings + self.position_embeddings(position_ids.long())
        if self.token_type_embeddings is not None:
            if token_type_ids is None:
                embeddings = embeddings + self.token_type_embeddings.weight[0]
            else:
                embeddings = embeddings + self.token_type_embeddings(token_type_ids)
        if self.embed_proj is not None:
            embeddings = self.embed_proj(embeddings)
        embeddings = self.LayerNorm(embeddings)
        if attention_mask is not None:
            embeddings = embeddings * attention_mask.unsqueeze(-1).to(embeddings.dtype)
        return self.dropout(embeddings)


class DisentangledSelfAttention(nn.Module):
    """Scores = (content·content + content·position + position·content) / sqrt(head_size * terms)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = getattr(config, "attention_head_size", None) or (
            config.hidden_size // config.num_attention_heads
        )
        all_head_size = self.num_attention_heads * self.attention_head_size
        self.query_proj = nn.Linear(config.hidden_size, all_head_size)
        self.key_proj = nn.Linear(config.hidden_size, all_head_size)
        self.value_proj = nn.Linear(config.hidden_size, all_head_size)
        self.share_att_key = getattr(config, "share_att_key", False)
        self.pos_att_type = list(config.pos_att_type or ())
        self.relative_attention = config.relative_attention
        if self.relative_attention:
            self.pos_dropout = nn.Dropout(config.hidden_dropout_prob)
            if not self.share_att_key:
                if "c2p" in self.pos_att_type:
                    self.pos_key_proj = nn.Linear(config.hidden_size, all_head_size)
                if "p2c" in self.pos_att_type:
                    self.pos_query_proj = nn.Linear(config.hidden_size, all_head_size)
        self.dropout = nn.Dropout(config.attention_probs_dropout_prob)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """(..., length, heads * size) -> (..., heads, length, size)."""
        return x.unflatten(-1, (self.num_attention_heads, self.attention_head_size)).transpose(-2, -3)

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        positions: RelativePositions | None,
        rel_embeddings: torch.Tensor | None,
        first_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """With ``first_only`` only position 0 queries (output (batch, 1, hidden)): all a [CLS] head reads."""
        queries = hidden_states[:, :1] if first_only else hidden_states
        query = self._heads(self.query_proj(queries))
        key = self._heads(self.key_proj(hidden_states))
        value = self._heads(self.value_proj(hidden_states))
        terms = 1 + sum(kind in self.pos_att_type for kind in ("c2p", "p2c"))
        scale = 1.0 / math.sqrt(self.attention_head_size * terms)

        bias = None
        if self.relative_attention and self.pos_att_type:
            bias = self._relative_scores(query, key, positions, self.pos_dropout(rel_embeddings), first_only) * scale
        if mask is not None:
            mask = mask[:, :, :1] if first_only else mask
            # Masked scores stay at dtype-min (the bias is absorbed); the clamp keeps fp16 from overflowing to -inf,
            # which would turn a padding row into NaN and spread it through the values of the next layer.
            bias = mask if bias is None else (bias + mask).clamp_(min=torch.finfo(mask.dtype).min)

        if output_attentions:
            scores = torch.matmul(query, key.transpose(-1, -2)) * scale
            if bias is not None:
                scores = (scores + bias).clamp_(min=torch.finfo(scores.dtype).min)
            probs = torch.softmax(scores, dim=-1)
            context = torch.matmul(self.dropout(probs), value)
        else:
            probs = None
            context = F.scaled_dot_product_attention(
                query, key, value, attn_mask=bias, dropout_p=self.dropout.p if self.training else 0.0, scale=scale
            )
        return context.transpose(1, 2).flatten(2), probs

    def _relative_scores(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        positions: RelativePositions,
        rel_embeddings: torch.Tensor,
        first_only: bool,
    ) -> torch.Tensor:
        """Unscaled c2p + p2c scores, (batch, heads, queries, keys)."""
        index = positions.index[:1] if first_only else positions.index
        batch, heads, queries = query.shape[:3]
        keys = key.shape[2]
        score = 0
        if "c2p" in self.pos_att_type:
            project = self.key_proj if self.share_att_key else self.pos_key_proj
            pos_key = self._heads(project(rel_embeddings))  # (heads, rows, size)
            c2p = torch.matmul(query, pos_key.transpose(-1, -2))  # (batch, heads, queries, rows)
            score = score + torch.gather(c2p, -1, index.expand(batch, heads, queries, keys))
        if "p2c" in self.pos_att_type:
            project = self.query_proj if self.share_att_key else self.pos_query_proj
            pos_query = self._heads(project(rel_embeddings))
            p2c = torch.matmul(key, pos_query.transpose(-1, -2))  # (batch, heads, keys, rows)
            p2c = torch.gather(p2c, -1, index.transpose(0, 1).expand(batch, heads, keys, queries))
            score = score + p2c.transpose(-1, -2)
        return score


class DebertaV2SelfOutput(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class DebertaV2Attention(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.self = DisentangledSelfAttention(config)
        self.output = DebertaV2SelfOutput(config)

    def forward(self, hidden_states, mask, output_attentions, positions, rel_embeddings, first_only=False):
        context, probs = self.self(hidden_states, mask, output_attentions, positions, rel_embeddings, first_only)
        residual = hidden_states[:, :1] if first_only else hidden_states
        return self.output(context, residual), probs


class DebertaV2Intermediate(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.intermediate_act_fn = get_activation(config.hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class DebertaV2Output(DebertaV2SelfOutput):
    """Same as DebertaV2SelfOutput except: projects from intermediate_size."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.dense = nn.Linear(config.intermediate_size, config.hidden_size)


class DebertaV2Layer(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.attention = DebertaV2Attention(config)
        self.intermediate = DebertaV2Intermediate(config)
        self.output = DebertaV2Output(config)

    def forward(self, hidden_states, mask, output_attentions, positions, rel_embeddings, first_only=False):
        attended, probs = self.attention(hidden_states, mask, output_attentions, positions, rel_embeddings, first_only)
        return self.output(self.intermediate(attended), attended), probs


class ConvLayer(nn.Module):
    """A 1-D convolution over the embeddings, added to the first layer's output (DeBERTa-v2 xlarge/xxlarge)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        kernel_size = getattr(config, "conv_kernel_size", 3)
        groups = getattr(config, "conv_groups", 1)
        self.conv_act = get_activation(getattr(config, "conv_act", "tanh"))
        self.conv = nn.Conv1d(
            config.hidden_size, config.hidden_size, kernel_size, padding=(kernel_size - 1) // 2, groups=groups
        )
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        out = self.conv(hidden_states.transpose(1, 2)).transpose(1, 2)
        keep = keep.unsqueeze(-1).to(out.dtype)
        out = self.conv_act(self.dropout(out * keep))
        return self.LayerNorm(residual + out) * keep


class DebertaV2Encoder(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(DebertaV2Layer(config) for _ in range(config.num_hidden_layers))
        self.relative_attention = config.relative_attention
        if self.relative_attention:
            self.max_relative_positions = config.max_relative_positions
            if self.max_relative_positions < 1:
                self.max_relative_positions = config.max_position_embeddings
            self.position_buckets = getattr(config, "position_buckets", -1)
            self.span = self.position_buckets if self.position_buckets > 0 else self.max_relative_positions
            self.rel_embeddings = nn.Embedding(self.span * 2, config.hidden_size)
        self.norm_rel_ebd = [part.strip() for part in (getattr(config, "norm_rel_ebd", None) or "none").lower().split("|")]
        if "layer_norm" in self.norm_rel_ebd:
            self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.conv = ConvLayer(config) if getattr(config, "conv_kernel_size", 0) > 0 else None
        self._positions: dict[tuple[int, torch.device], RelativePositions] = {}

    def relative_positions(self, length: int, device: torch.device) -> RelativePositions:
        """Built once per (length, device), then reused."""
        cache_key = (length, device)
        positions = self._positions.get(cache_key)
        if positions is None:
            positions = RelativePositions(length, self.span, self.position_buckets, self.max_relative_positions, device)
            self._positions[cache_key] = positions
        return positions

    def rel_embedding_rows(self, positions: RelativePositions) -> torch.Tensor:
        """The relative embeddings this length reads (LayerNorm is per row, so slicing first is exact)."""
        rows = self.rel_embeddings.weight[positions.first : positions.first + positions.count]
        return self.LayerNorm(rows) if "layer_norm" in self.norm_rel_ebd else rows

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        first_token_only: bool = False,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        mask = _pair_mask(attention_mask, hidden_states.dtype)  # once per forward, shared by all layers
        positions = rel_embeddings = None
        if self.relative_attention:
            positions = self.relative_positions(hidden_states.shape[1], hidden_states.device)
            rel_embeddings = self.rel_embedding_rows(positions)
        all_hidden = [hidden_states] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        embeddings = hidden_states
        last = len(self.layer) - 1
        for i, layer in enumerate(self.layer):
            # The conv after layer 0 needs every position, so a one-layer conv model never takes the shortcut.
            first_only = first_token_only and i == last and not (i == 0 and self.conv is not None)
            hidden_states, probs = layer(hidden_states, mask, output_attentions, positions, rel_embeddings, first_only)
            if i == 0 and self.conv is not None:
                keep = attention_mask if attention_mask is not None else embeddings.new_ones(embeddings.shape[:2])
                hidden_states = self.conv(embeddings, hidden_states, keep)
            if all_hidden is not None:
                all_hidden.append(hidden_states)
            if all_attentions is not None:
                all_attentions.append(probs)
        return (
            hidden_states,
            tuple(all_hidden) if all_hidden is not None else None,
            tuple(all_attentions) if all_attentions is not None else None,
        )


def _pair_mask(attention_mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """Additive (batch, 1, queries, keys) mask, dtype-min unless both the query and the key are tokens; None when
    nothing is padded. Unlike BERT, DeBERTa masks padding queries too: their rows come out as a uniform average,
    which is what transformers returns at those positions."""
    if attention_mask is None:
        return None
    keep = attention_mask.bool()
    if bool(keep.all()):
        return None
    pair = keep[:, None, :, None] & keep[:, None, None, :]
    return torch.zeros(pair.shape, dtype=dtype, device=keep.device).masked_fill_(~pair, torch.finfo(dtype).min)


class DebertaV2PreTrainedModel(PreTrainedModel):
    config_class = DebertaV2Config
    base_model_prefix = "deberta"
    # v3 checkpoints (position_biased_input false) still carry an unused absolute position table.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"embeddings\.position_embeddings\."]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.base_model.embeddings.word_embeddings = value


class DebertaV2Model(EncoderModel, DebertaV2PreTrainedModel):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        _check_supported(config)
        self.embeddings = DebertaV2Embeddings(config)
        self.encoder = DebertaV2Encoder(config)

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
    ) -> BaseModelOutput:
        """The encoder's output; what every head reads. ``first_token_only``: the last layer runs for position 0
        alone (last hidden state (batch, 1, hidden)); ignored when hidden states or attentions are requested."""
        check_inputs(
            input_ids, inputs_embeds, attention_mask,
            max_length=self._max_length(), hidden_size=self.embeddings.embedding_size,
        )
        embeddings = self.embeddings(input_ids, token_type_ids, position_ids, attention_mask, inputs_embeds)
        first_token_only = first_token_only and not (output_hidden_states or output_attentions)
        hidden, all_hidden, all_attentions = self.encoder(
            embeddings, attention_mask, output_hidden_states, output_attentions, first_token_only
        )
        return BaseModelOutput(last_hidden_state=hidden, hidden_states=all_hidden, attentions=all_attentions)

    def _max_length(self) -> int:
        # Relative positions extend to any length; only an absolute position table bounds it.
        return self.config.max_position_embeddings if self.embeddings.position_embeddings is not None else 2**31


# --- task heads ----------------------------------------------------------------------------------


class ContextPooler(nn.Module):
    """activation(dense(first token)): the sentence vector DeBERTa's classifiers read."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.pooler_hidden_size, config.pooler_hidden_size)
        self.dropout = nn.Dropout(config.pooler_dropout)
        self.activation = get_activation(config.pooler_hidden_act)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(self.dropout(hidden_states[:, 0])))


def deberta_sequence_loss(config: DebertaV2Config, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """DeBERTa's own rules when config.problem_type is unset (negative labels are ignored, 2-D labels are soft
    targets; problem_type stays unset), else the usual regression / single-label / multi-label losses."""
    if config.problem_type is not None:
        return sequence_classification_loss(config, logits, labels)
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.view(-1).to(labels.dtype), labels.view(-1))
    if labels.dim() == 1 or labels.shape[-1] == 1:
        labels = labels.view(-1).long()
        labelled = labels >= 0
        if not bool(labelled.any()):
            return logits.new_zeros(())
        return F.cross_entropy(logits[labelled].float(), labels[labelled])
    return -(torch.log_softmax(logits, dim=-1) * labels).sum(-1).mean()


class DebertaV2ForSequenceClassification(SequenceClassification, DebertaV2PreTrainedModel):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.deberta = DebertaV2Model(config)
        self.pooler = ContextPooler(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        dropout = getattr(config, "cls_dropout", None)
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        return self.classifier(self.dropout(self.pooler(encoded.last_hidden_state)))

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return deberta_sequence_loss(self.config, logits, labels)


class DebertaV2ForTokenClassification(TokenClassification, DebertaV2PreTrainedModel):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.deberta = DebertaV2Model(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)


class DebertaV2ForQuestionAnswering(QuestionAnswering, DebertaV2PreTrainedModel):
    """Start/end span scores per token (``qa_outputs`` has num_labels = 2 outputs)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.deberta = DebertaV2Model(config)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)


# Masked-LM heads. transformers v5 builds ``cls.predictions.*`` when config.legacy (the default) and
# ``lm_predictions.lm_head.*`` otherwise; Microsoft's original v3 checkpoints store the latter with no ``legacy``
# in config.json. The head follows the checkpoint's names (see DebertaV2ForMaskedLM.load_checkpoint).


class LegacyDebertaV2PredictionHeadTransform(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class LegacyDebertaV2LMPredictionHead(nn.Module):
    """Transform, then ``decoder`` (weight tied to the word embeddings, bias to ``bias``)."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.transform = LegacyDebertaV2PredictionHeadTransform(config)
        self.decoder = nn.Linear(config.embedding_size, config.vocab_size)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform(hidden_states))


class LegacyDebertaV2OnlyMLMHead(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.predictions = LegacyDebertaV2LMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        return self.predictions(sequence_output)


class DebertaV2LMPredictionHead(nn.Module):
    """dense -> activation -> LayerNorm, then scores against the word embeddings plus ``bias``."""

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = get_activation(config.hidden_act)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, hidden_states: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        hidden_states = self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))
        return F.linear(hidden_states, word_embeddings.weight, self.bias)


class DebertaV2OnlyMLMHead(nn.Module):
    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__()
        self.lm_head = DebertaV2LMPredictionHead(config)

    def forward(self, sequence_output: torch.Tensor, word_embeddings: nn.Embedding) -> torch.Tensor:
        return self.lm_head(sequence_output, word_embeddings)


_LEGACY_TIES = {
    "cls.predictions.decoder.weight": "deberta.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}


class DebertaV2ForMaskedLM(MaskedLM, DebertaV2PreTrainedModel):
    _tied_weights_keys = _LEGACY_TIES

    def __init__(self, config: DebertaV2Config) -> None:
        super().__init__(config)
        self.deberta = DebertaV2Model(config)
        self._build_head(bool(config.legacy))
        self.tie_weights()

    def _build_head(self, legacy: bool) -> None:
        for name in ("cls", "lm_predictions"):
            if hasattr(self, name):
                delattr(self, name)
        self.legacy = legacy
        if legacy:
            self.cls = LegacyDebertaV2OnlyMLMHead(self.config)
            self._tied_weights_keys = _LEGACY_TIES
        else:
            self.lm_predictions = DebertaV2OnlyMLMHead(self.config)
            self._tied_weights_keys = {}  # scores against the word embeddings directly

    def load_checkpoint(self, files, **kwargs) -> None:
        """Build the head the checkpoint holds weights for, whatever config.legacy says: original v3 MLM
        checkpoints store ``lm_predictions.lm_head.*`` with no ``legacy`` field (which defaults to true)."""
        names = {name for name, _ in iter_checkpoint(files)}  # safetensors tensors are lazy views: no reads
        has_legacy = any(name.startswith("cls.predictions.") for name in names)
        has_current = any(name.startswith("lm_predictions.lm_head.") for name in names)
        if has_legacy != has_current and has_legacy != self.legacy:
            logger.info("The checkpoint holds the %s masked-LM head; building that one.", "legacy" if has_legacy else "v3")
            device = next(self.deberta.parameters()).device
            with torch.device(device):
                self._build_head(has_legacy)
            self.config.legacy = has_legacy
        super().load_checkpoint(files, **kwargs)

    def get_output_embeddings(self) -> nn.Module:
        return self.cls.predictions.decoder if self.legacy else self.lm_predictions.lm_head.dense

    def head(self, encoded: BaseModelOutput) -> torch.Tensor:
        head = self.cls if self.legacy else self.lm_predictions
        return head(encoded.last_hidden_state, self.deberta.embeddings.word_embeddings)
