"""mBART: a pre-norm Transformer encoder-decoder (facebook/mbart-large-50 and its fine-tunes), with transformers'
module names so checkpoints load as they are.

Reads top to bottom: config (BART's, but for the decoder start), mBART's shift-right, pre-norm encoder and decoder
layers (BART's modules, over bart.BartAttention, which also serves the decoder cache), encoder and decoder (BART's,
with these layers and a final ``layer_norm``), base model, conditional-generation head. The loops, ``run`` and the
LM head are ``hugkit.encoder_decoder``'s.

Pegasus and Whisper reuse the pre-norm layers, as in transformers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import Seq2SeqLMWithLogitsBias, shared_embedding_ties
from ..kv_cache import EncoderDecoderCache
from ..task_heads import Seq2SeqModel
from .bart import (
    BartConfig,
    BartDecoder,
    BartDecoderLayer,
    BartEncoder,
    BartEncoderLayer,
    BartPreTrainedModel,
    BartScaledWordEmbedding,
    _embedding_scale,
    _feed_forward,
)


class MBartConfig(PretrainedConfig):
    """BART's fields and defaults, but ``decoder_start_token_id``: None, so generation starts from bos;
    mbart-large-50 checkpoints set 2 (</s>) and force the target language code as the first token with
    forced_bos_token_id (generation config). (Unlike BartConfig, classification defaults to 2 labels.)"""

    model_type = "mbart"
    attribute_map = BartConfig.attribute_map
    defaults = {**BartConfig.defaults, "decoder_start_token_id": None}


def shift_tokens_right(input_ids: torch.Tensor, pad_token_id: int | None) -> torch.Tensor:
    """mBART's decoder inputs from target ids: shifted one step right, with each row's last non-pad token (the
    language code that ends an mBART target, or </s>) wrapped round to position 0; -100 becomes pad.

    Like transformers, rows are taken to be right-padded (the last non-pad token sits at ``count - 1``).
    """
    if pad_token_id is None:
        raise ValueError(
            "config.pad_token_id must be set to build mBART decoder_input_ids from labels or input_ids (found None); "
            "set it in config.json or pass decoder_input_ids."
        )
    tokens = input_ids.masked_fill(input_ids == -100, pad_token_id)
    last = tokens.ne(pad_token_id).sum(dim=1) - 1
    if bool((last < 0).any()):
        rows = (last < 0).nonzero().flatten().tolist()
        raise ValueError(
            f"Rows {rows} are all padding (or -100), so they have no last token to start the decoder with. "
            "Drop empty rows, or pass decoder_input_ids."
        )
    start = tokens.gather(1, last.unsqueeze(-1))
    return torch.cat([start, tokens[:, :-1]], dim=1)


def _clamp_fp16(hidden_states: torch.Tensor) -> torch.Tensor:
    """mBART, Pegasus and Whisper clamp every fp16 encoder layer output to stay finite (BART only when it
    overflowed)."""
    if hidden_states.dtype != torch.float16:
        return hidden_states
    limit = torch.finfo(hidden_states.dtype).max - 1000
    return hidden_states.clamp(-limit, limit)


class MBartEncoderLayer(BartEncoderLayer):
    """BART's encoder layer (the same modules), pre-norm: LayerNorm, attention, add; LayerNorm, feed-forward, add."""

    def forward(
        self, hidden_states: torch.Tensor, mask: torch.Tensor | None, output_attentions: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, probs = self.self_attn(self.self_attn_layer_norm(hidden_states), mask, output_attentions)
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        hidden_states = hidden_states + _feed_forward(self, self.final_layer_norm(hidden_states))
        return _clamp_fp16(hidden_states), probs


class MBartDecoderLayer(BartDecoderLayer):
    """BART's decoder layer (the same modules), pre-norm: causal self-attention, cross-attention over the encoder
    output, feed-forward, each after a LayerNorm and added to its input."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        self_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_mask: torch.Tensor | None,
        output_attentions: bool,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        attended, self_probs = self.self_attn(
            self.self_attn_layer_norm(hidden_states), self_mask, output_attentions,
            cache=cache, cache_position=cache_position,
        )
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        attended, cross_probs = self.encoder_attn(
            self.encoder_attn_layer_norm(hidden_states), encoder_mask, output_attentions, encoder_hidden_states,
            cache=cache,
        )
        hidden_states = hidden_states + F.dropout(attended, self.dropout, self.training)
        hidden_states = hidden_states + _feed_forward(self, self.final_layer_norm(hidden_states))
        return hidden_states, self_probs, cross_probs


# --- encoder, decoder, base model and head -------------------------------------------------------------------


class MBartEncoder(BartEncoder):
    """BART's encoder (scaled token embeddings, learned positions, ``layernorm_embedding``) with the pre-norm
    layers and a ``layer_norm`` after the last one."""

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config, MBartEncoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)


class MBartDecoder(BartDecoder):
    """BART's decoder with the pre-norm layers and a ``layer_norm`` after the last one."""

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config, MBartDecoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)


class MBartPreTrainedModel(BartPreTrainedModel):
    config_class = MBartConfig


class MBartModel(Seq2SeqModel, MBartPreTrainedModel):
    _tied_weights_keys = shared_embedding_ties()

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config)
        self.shared = BartScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, _embedding_scale(config))
        self.encoder = MBartEncoder(config)
        self.decoder = MBartDecoder(config)
        self.tie_weights()

    def default_decoder_input_ids(self, input_ids: torch.Tensor | None) -> torch.Tensor:
        """Without decoder inputs mBART decodes ``input_ids`` shifted right (mBART's rule)."""
        if input_ids is None:
            raise ValueError(
                "mBART needs decoder inputs: pass decoder_input_ids or decoder_inputs_embeds, or input_ids "
                "(decoder_input_ids are then input_ids shifted right, their last token wrapped to the front)."
            )
        return shift_tokens_right(input_ids, self.config.pad_token_id)


class MBartForConditionalGeneration(Seq2SeqLMWithLogitsBias, MBartPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``.

    Translation with mbart-large-50 fine-tunes starts the decoder at ``decoder_start_token_id`` (</s>) and forces
    the target language code as the first generated token: ``forced_bos_token_id``, read from the checkpoint's
    config or generation config (or passed to ``generate``)."""

    def __init__(self, config: MBartConfig) -> None:
        super().__init__(config)
        self.model = MBartModel(config)
        self._build_lm_head(config, config.vocab_size)
        self.tie_weights()

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id)
