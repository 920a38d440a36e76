"""Whisper: a speech encoder (two convolutions over log-mel frames, fixed sinusoidal positions, pre-norm layers) and a
text decoder (learned positions, pre-norm layers with cross-attention), transformers' names throughout.

Reads top to bottom: config, attention, layers, encoder, decoder, base model, the speech-to-text head. Generation
(the forced prompt, timestamps, long-form windows, temperature fallback, token timestamps) lives in
``hugkit.generation.whisper``.

The layers are mBART's pre-norm ones (mbart.py) over Whisper's attention; the layer loops, the accessors generation
uses and the shift-right are ``hugkit.encoder_decoder``'s. What differs from mBART: queries are scaled before the
product with the keys (OpenAI's order, kept for bit-level agreement), ``k_proj`` has no bias, the encoder takes
``input_features`` (batch, num_mel_bins, 2 * max_source_positions) and ignores ``attention_mask`` (as
transformers does: the padding of a 30-second window is part of what the model was trained on), and the decoder
takes ``position_ids``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import (
    EncoderDecoderParts,
    as_encoder_output,
    decoder_cache,
    run_decoder_layers,
    run_encoder_layers,
    seq2seq_output,
    shift_tokens_right,
)
from ..generation.whisper import WhisperGenerationMixin
from ..kv_cache import EncoderDecoderCache, causal_mask, decoder_inputs
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, BaseModelOutputWithPastAndCrossAttentions, Seq2SeqLMOutput, Seq2SeqModelOutput
from ..task_heads import resolve_cache
from .bart import BartAttention
from .mbart import MBartDecoderLayer, MBartEncoderLayer

logger = logging.getLogger(__name__)


class WhisperConfig(PretrainedConfig):
    model_type = "whisper"
    attribute_map = {
        "num_key_value_heads": "encoder_attention_heads",
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults = {
        "vocab_size": 51865,
        "num_mel_bins": 80,
        "encoder_layers": 4,
        "encoder_attention_heads": 6,
        "decoder_layers": 4,
        "decoder_attention_heads": 6,
        "decoder_ffn_dim": 1536,
        "encoder_ffn_dim": 1536,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "decoder_start_token_id": 50257,
        "use_cache": True,
        "is_encoder_decoder": True,
        "activation_function": "gelu",
        "d_model": 384,
        "dropout": 0.0,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "scale_embedding": False,
        "max_source_positions": 1500,
        "max_target_positions": 448,
        "pad_token_id": 50256,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "suppress_tokens": None,
        "begin_suppress_tokens": [220, 50256],
        "use_weighted_layer_sum": False,
        "classifier_proj_size": 256,
        "apply_spec_augment": False,
        "mask_time_prob": 0.05,
        "mask_time_length": 10,
        "mask_time_min_masks": 2,
        "mask_feature_prob": 0.0,
        "mask_feature_length": 10,
        "mask_feature_min_masks": 0,
        "median_filter_width": 7,
        "tie_word_embeddings": True,
    }


def sinusoids(length: int, channels: int, max_timescale: float = 10000) -> torch.Tensor:
    """The encoder's fixed positions: sines then cosines of ``channels // 2`` geometric timescales (OpenAI's table)."""
    if channels % 2:
        raise ValueError(f"Sinusoidal positions need an even d_model, found {channels}.")
    increment = math.log(max_timescale) / (channels // 2 - 1)
    inverse = torch.exp(-increment * torch.arange(channels // 2))
    scaled = torch.arange(length).view(-1, 1) * inverse.view(1, -1)
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


# --- attention ----------------------------------------------------------------------------------------------------


# Same as bart.BartAttention except: k_proj has no bias, and the queries are scaled before the product with the keys.
class WhisperAttention(BartAttention):
    """Multi-head attention with the queries scaled first; ``k_proj`` has no bias (OpenAI's layout).

    Self-attention when ``key_value_states`` is None (keys cached through ``cache.update`` when a cache is given),
    cross-attention otherwise (keys and values of the encoder output, computed once per cache).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float, layer_idx: int | None = None) -> None:
        super().__init__(embed_dim, num_heads, dropout, layer_idx)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.scaling = self.head_dim**-0.5

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        output_attentions: bool,
        key_value_states: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        cache_position: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        query = self._heads(self.q_proj(hidden_states) * self.scaling)
        key, value = self._keys_values(hidden_states, key_value_states, cache, cache_position)
        dropout = self.dropout if self.training else 0.0
        # Same as t5._attention: unscaled (the queries already are), the mask added to the scores.
        if output_attentions:
            scores = torch.matmul(query, key.transpose(-1, -2))
            if mask is not None:
                scores = scores + mask
            probs = torch.softmax(scores, dim=-1)
            context = torch.matmul(F.dropout(probs, p=dropout) if dropout else probs, value)
        else:
            probs = None
            context = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=1.0)
        batch, length = hidden_states.shape[:2]
        return self.out_proj(context.transpose(1, 2).reshape(batch, length, self.embed_dim)), probs


class WhisperEncoderLayer(MBartEncoderLayer):
    """mBART's pre-norm layer (fp16 outputs clamped) over Whisper's attention; the encoder passes no mask."""

    attention_class = WhisperAttention


class WhisperDecoderLayer(MBartDecoderLayer):
    """mBART's pre-norm layer over Whisper's attention; the cross-attention is unmasked."""

    attention_class = WhisperAttention


# --- encoder and decoder ------------------------------------------------------------------------------------------


class WhisperEncoder(nn.Module):
    """conv1 -> GELU -> conv2 (stride 2) -> GELU, plus the fixed sinusoidal positions, then the layers and a LayerNorm.

    ``embed_positions`` is stored in checkpoints (OpenAI's sinusoids) and loaded like any weight; a model built from
    a config starts with the same sinusoids.
    """

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        embed_dim = config.d_model
        self.num_mel_bins = config.num_mel_bins
        self.max_source_positions = config.max_source_positions
        self.conv1 = nn.Conv1d(config.num_mel_bins, embed_dim, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(embed_dim, embed_dim, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, embed_dim)
        self.embed_positions.requires_grad_(False)
        with torch.no_grad():
            self.embed_positions.weight.copy_(sinusoids(config.max_source_positions, embed_dim))
        self.layers = nn.ModuleList(WhisperEncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = nn.LayerNorm(embed_dim)
        self.dropout = config.dropout

    @property
    def input_stride(self) -> int:
        """Mel frames per encoder position (2: conv2's stride)."""
        return self.conv1.stride[0] * self.conv2.stride[0]

    def forward(
        self,
        input_features: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        """``attention_mask`` is accepted and ignored, as in transformers: Whisper attends over the whole window."""
        output_attentions = self.config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = self.config.return_dict if return_dict is None else return_dict
        self._check_features(input_features)
        inputs_embeds = F.gelu(self.conv1(input_features.to(self.conv1.weight.dtype)))
        inputs_embeds = F.gelu(self.conv2(inputs_embeds)).permute(0, 2, 1)
        hidden = F.dropout(inputs_embeds + self.embed_positions.weight, self.dropout, self.training)
        out = run_encoder_layers(self.layers, hidden, None, output_attentions, output_hidden_states, self.layer_norm)
        return out if return_dict else out.to_tuple()

    def _check_features(self, input_features: Any) -> None:
        frames = self.max_source_positions * self.input_stride
        if not isinstance(input_features, torch.Tensor) or not input_features.is_floating_point():
            raise TypeError(
                f"input_features should be a float tensor of log-mel features (batch, {self.num_mel_bins}, {frames}), "
                f"found {type(input_features).__name__}"
                f"{' of dtype ' + str(input_features.dtype) if isinstance(input_features, torch.Tensor) else ''}. "
                "Make them with WhisperFeatureExtractor(audio, sampling_rate=16000, return_tensors='pt')."
            )
        if input_features.dim() != 3 or input_features.shape[1] != self.num_mel_bins or input_features.shape[2] != frames:
            raise ValueError(
                f"Whisper's encoder expects input_features of shape (batch, {self.num_mel_bins}, {frames}) "
                f"({frames} mel frames = 30 seconds), found {tuple(input_features.shape)}. Pad (or cut) the features "
                f"to {frames} frames: WhisperFeatureExtractor pads to 30 seconds by default; longer audio goes "
                "through generate(), which transcribes it in 30-second windows."
            )


class WhisperDecoder(nn.Module):
    """Token embeddings plus learned positions (indexed by position id), the layers, a final LayerNorm."""

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_positions = nn.Embedding(config.max_target_positions, config.d_model)
        self.layers = nn.ModuleList(WhisperDecoderLayer(config, i) for i in range(config.decoder_layers))
        self.layer_norm = nn.LayerNorm(config.d_model)
        self.dropout = config.dropout
        self.max_target_positions = config.max_target_positions

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        past_key_values: EncoderDecoderCache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool = True,
        cache: EncoderDecoderCache | None = None,
    ) -> BaseModelOutputWithPastAndCrossAttentions | tuple:
        """transformers' decoder call (argument order and output; ``cache`` is transformers 5's name for
        ``past_key_values``); None flags mean "as the config says".

        ``attention_mask`` is the 2-D decoder padding mask over past and new tokens; ``position_ids`` default to the
        cache slots of the new tokens (transformers' rule: a padding mask does not shift them). Without
        ``use_cache`` a passed cache is not used (transformers' rule); with it and none passed, a dynamic one starts.
        """
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = config.use_cache if use_cache is None else use_cache
        past_key_values = resolve_cache(past_key_values, cache)
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError(
                "Whisper's decoder needs exactly one of decoder_input_ids or decoder_inputs_embeds "
                f"(got {'both' if input_ids is not None else 'neither'})."
            )
        if encoder_hidden_states is None:
            raise ValueError("Whisper's decoder cross-attends to the encoder output: pass encoder_hidden_states.")
        if inputs_embeds is None:
            _check_decoder_ids(input_ids)
            inputs_embeds = self.embed_tokens(input_ids)
        length = inputs_embeds.shape[1]
        cache = decoder_cache(past_key_values if use_cache else None, use_cache)
        if cache_position is None:
            past = cache.get_seq_length() if cache is not None else 0
            if past + length > self.max_target_positions:
                raise ValueError(
                    f"The decoder input reaches position {past + length}, but Whisper's decoder has "
                    f"{self.max_target_positions} positions (max_target_positions). Shorten decoder_input_ids or "
                    "the prompt."
                )
        given_positions = position_ids
        cache_position, position_ids, keep, kv_length = decoder_inputs(
            cache, attention_mask, position_ids, cache_position, length, inputs_embeds.device
        )
        if given_positions is None:
            position_ids = cache_position[None]
        hidden = inputs_embeds + self.embed_positions(position_ids).to(inputs_embeds.dtype)
        hidden = F.dropout(hidden, self.dropout, self.training)
        out = run_decoder_layers(
            self.layers, hidden, causal_mask(keep, cache_position, kv_length, hidden.dtype), encoder_hidden_states,
            None, output_attentions, output_hidden_states, self.layer_norm, cache, cache_position,
        )
        return out if return_dict else out.to_tuple()


def _check_decoder_ids(input_ids: Any) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.int64, torch.int32) or input_ids.dim() != 2:
        found = f"{input_ids.dtype} of shape {tuple(input_ids.shape)}" if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
        raise ValueError(
            f"decoder_input_ids should be integer token ids of shape (batch, length), found {found}. "
            "Start from generation_config.decoder_start_token_id (<|startoftranscript|>), e.g. "
            "torch.tensor([[model.config.decoder_start_token_id]])."
        )


# --- base model and head ------------------------------------------------------------------------------------------


class WhisperPreTrainedModel(EncoderDecoderParts, PreTrainedModel):
    config_class = WhisperConfig
    base_model_prefix = "model"
    main_input_name = "input_features"

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.decoder.embed_tokens

    def _get_feat_extract_output_lengths(self, input_lengths: torch.Tensor) -> torch.Tensor:
        """Encoder positions for a number of mel frames (conv2's stride halves them)."""
        return (input_lengths - 1) // 2 + 1


class WhisperModel(WhisperPreTrainedModel):
    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.encoder = WhisperEncoder(config)
        self.decoder = WhisperDecoder(config)

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: EncoderDecoderCache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
    ) -> Seq2SeqModelOutput | tuple:
        """transformers' arguments; ``cache``: transformers 5's name for ``past_key_values`` (either works)."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        past_key_values = resolve_cache(past_key_values, cache)
        out = self.run(
            input_features, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
            past_key_values, decoder_inputs_embeds, decoder_position_ids, use_cache, output_attentions,
            output_hidden_states, cache_position,
        )
        return out if return_dict else out.to_tuple()

    def run(
        self,
        input_features: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_attention_mask: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | None,
        past_key_values: EncoderDecoderCache | None,
        decoder_inputs_embeds: torch.Tensor | None,
        decoder_position_ids: torch.Tensor | None,
        use_cache: bool | None,
        output_attentions: bool | None,
        output_hidden_states: bool | None,
        cache_position: torch.Tensor | None,
    ) -> Seq2SeqModelOutput:
        """Encoder (unless ``encoder_outputs`` are given) then decoder; None flags mean "as the config says"."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        use_cache = config.use_cache if use_cache is None else use_cache
        if encoder_outputs is None:
            if input_features is None:
                raise ValueError(
                    "Whisper needs input_features (log-mel features from WhisperFeatureExtractor) or encoder_outputs."
                )
            encoder_outputs = self.encoder(
                input_features, output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                return_dict=True,
            )
        encoder_outputs = as_encoder_output(encoder_outputs)
        decoded = self.decoder(
            decoder_input_ids, decoder_attention_mask, encoder_outputs.last_hidden_state, past_key_values,
            decoder_inputs_embeds, decoder_position_ids, use_cache, cache_position, output_attentions,
            output_hidden_states,
        )
        return seq2seq_output(encoder_outputs, decoded)


class WhisperForConditionalGeneration(WhisperGenerationMixin, WhisperPreTrainedModel):
    """Speech to text: vocabulary logits from ``proj_out`` (tied to the decoder's token embeddings), and Whisper's
    ``generate`` (see ``hugkit.generation.whisper``)."""

    _tied_weights_keys = {"proj_out.weight": "model.decoder.embed_tokens.weight"}

    def __init__(self, config: WhisperConfig) -> None:
        super().__init__(config)
        self.model = WhisperModel(config)
        self.proj_out = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.max_target_positions = config.max_target_positions
        self.tie_weights()

    def get_output_embeddings(self) -> nn.Linear:
        return self.proj_out

    def forward(
        self,
        input_features: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        past_key_values: EncoderDecoderCache | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        decoder_position_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        cache_position: torch.Tensor | None = None,
        logits_to_keep: int = 0,
        cache: EncoderDecoderCache | None = None,
    ) -> Seq2SeqLMOutput | tuple:
        """transformers' arguments (``cache``: transformers 5's name for ``past_key_values``; either works);
        ``logits_to_keep`` (hugkit, for generation): logits of the last positions only."""
        return_dict = self.config.return_dict if return_dict is None else return_dict
        past_key_values = resolve_cache(past_key_values, cache)
        if labels is not None:
            if labels.shape[1] > self.max_target_positions:
                raise ValueError(
                    f"labels have {labels.shape[1]} tokens, but Whisper's decoder has {self.max_target_positions} "
                    "positions (max_target_positions). Truncate the labels."
                )
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        decoded = self.model.run(
            input_features, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
            past_key_values, decoder_inputs_embeds, decoder_position_ids, use_cache, output_attentions,
            output_hidden_states, cache_position,
        )
        hidden = decoded.last_hidden_state
        if logits_to_keep:
            hidden = hidden[:, -logits_to_keep:]
        logits = self.proj_out(hidden)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, self.config.vocab_size).float(), labels.reshape(-1).to(logits.device))
        out = Seq2SeqLMOutput(loss=loss, logits=logits, **decoded.seq2seq_states())
        return out if return_dict else out.to_tuple()
