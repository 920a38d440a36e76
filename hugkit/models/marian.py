"""Marian (Helsinki-NLP/opus-mt-*): a post-norm Transformer encoder-decoder with sinusoidal positions, with
transformers' module names so checkpoints load as they are.

Reads top to bottom: config, sinusoidal positions, encoder, decoder, base model, translation head. The layers are
BART's post-norm ones (with the decoder cache, see bart.py); the encoder/decoder loops, ``run`` and the LM head are
``hugkit.encoder_decoder``'s.

Differences from BART: positions are a fixed sinusoidal table (computed, never loaded or saved), no
``layernorm_embedding``, ``decoder_start_token_id`` is the pad token, and with
``share_encoder_decoder_embeddings=False`` the decoder has its own vocabulary (``decoder_vocab_size``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import (
    DecoderStack,
    EncoderDecoderModel,
    EncoderStack,
    Seq2SeqLMWithLogitsBias,
    shared_embedding_ties,
)
from ..modeling_utils import PreTrainedModel
from ..task_heads import Seq2SeqModel
from .bart import BartDecoderLayer, BartEncoderLayer, _embedding_scale


class MarianConfig(PretrainedConfig):
    model_type = "marian"
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults = {
        "vocab_size": 58101,
        "decoder_vocab_size": None,
        "max_position_embeddings": 1024,
        "encoder_layers": 12,
        "encoder_ffn_dim": 4096,
        "encoder_attention_heads": 16,
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
        "decoder_attention_heads": 16,
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "use_cache": True,
        "is_encoder_decoder": True,
        "activation_function": "gelu",
        "d_model": 1024,
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "init_std": 0.02,
        "decoder_start_token_id": 58100,
        "scale_embedding": False,
        "pad_token_id": 58100,
        "eos_token_id": 0,
        "bos_token_id": None,
        "forced_eos_token_id": 0,
        "share_encoder_decoder_embeddings": True,
        "is_decoder": False,
        "tie_word_embeddings": True,
    }

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        # Unset (or null in config.json): the decoder shares the source vocabulary's size, as in transformers.
        self.decoder_vocab_size = self.decoder_vocab_size or self.vocab_size


def sinusoidal_positions(num_positions: int, dim: int, device: torch.device | str | None = None) -> torch.Tensor:
    """The fixed position table of Marian and Pegasus, float32 ``(num_positions, dim)``.

    Position ``p``, feature pair ``i`` has angle ``p / 10000**(2i/dim)``; the sines of all pairs fill the first
    half of the vector and the cosines the second (not interleaved; with an odd ``dim`` the sines get the extra
    column). Computed in float64 and rounded once, as transformers does.
    """
    pairs = torch.arange(dim, device=device, dtype=torch.float64).div(2, rounding_mode="floor")
    angles = torch.arange(num_positions, device=device, dtype=torch.float64)[:, None] / torch.pow(10000.0, 2 * pairs / dim)
    sentinel = (dim + 1) // 2
    table = torch.empty(num_positions, dim, device=device, dtype=torch.float32)
    table[:, :sentinel] = torch.sin(angles[:, 0::2])
    table[:, sentinel:] = torch.cos(angles[:, 1::2])
    return table


class MarianSinusoidalPositionalEmbedding(nn.Module):
    """Rows of ``sinusoidal_positions``, held as the non-persistent buffer ``weight``: transformers does not save
    it (older checkpoints that carry ``embed_positions.weight`` have the same fixed values, and the key is
    ignored on load)."""

    def __init__(self, num_positions: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.register_buffer("weight", sinusoidal_positions(num_positions, embedding_dim), persistent=False)

    def _init_buffers(self, device: torch.device) -> None:
        if self.weight.is_meta:  # built on the meta device by from_pretrained
            self.weight = sinusoidal_positions(self.num_positions, self.embedding_dim, device)

    def forward(self, positions: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """``positions`` (length,) -> ``(length, dim)`` in ``dtype``, broadcast over the batch."""
        return F.embedding(positions, self.weight).to(dtype)


class MarianEncoder(EncoderStack):
    """Token embeddings times ``embed_scale`` (given ``inputs_embeds`` are used as they are, like transformers)
    plus sinusoidal positions; ``layer_class`` lets Pegasus reuse this with mBART's pre-norm layers."""

    def __init__(self, config: PretrainedConfig, layer_class: type[nn.Module] = BartEncoderLayer) -> None:
        super().__init__(config, [layer_class(config) for _ in range(config.encoder_layers)])
        self.embed_scale = _embedding_scale(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.embed_positions = MarianSinusoidalPositionalEmbedding(config.max_position_embeddings, config.d_model)

    def embed(self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids) * self.embed_scale
        positions = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)
        return inputs_embeds + self.embed_positions(positions, inputs_embeds.dtype)


class MarianDecoder(DecoderStack):
    """Token embeddings (of the decoder vocabulary) times ``embed_scale``, given ``decoder_inputs_embeds`` too
    (transformers scales both), plus sinusoidal positions at the new tokens' cache positions."""

    def __init__(self, config: PretrainedConfig, layer_class: type[nn.Module] = BartDecoderLayer) -> None:
        super().__init__(config, [layer_class(config, i) for i in range(config.decoder_layers)])
        self.embed_scale = _embedding_scale(config)
        vocab = getattr(config, "decoder_vocab_size", None) or config.vocab_size
        self.embed_tokens = nn.Embedding(vocab, config.d_model, config.pad_token_id)
        self.embed_positions = MarianSinusoidalPositionalEmbedding(config.max_position_embeddings, config.d_model)

    def embed(
        self, input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, positions: torch.Tensor
    ) -> torch.Tensor:
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        inputs_embeds = inputs_embeds * self.embed_scale
        return inputs_embeds + self.embed_positions(positions, inputs_embeds.dtype)


class MarianPreTrainedModel(EncoderDecoderModel, PreTrainedModel):
    config_class = MarianConfig
    base_model_prefix = "model"
    # The sinusoidal tables are computed; checkpoints converted before transformers stopped saving them carry them.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"embed_positions\.weight$"]

    def get_input_embeddings(self) -> nn.Embedding:
        """The source embeddings (shared with the decoder unless share_encoder_decoder_embeddings is false)."""
        return self.base_model.encoder.embed_tokens


class MarianModel(Seq2SeqModel, MarianPreTrainedModel):
    """``shared`` exists only with ``share_encoder_decoder_embeddings`` (the default); otherwise encoder and decoder
    embeddings are separate weights, the decoder's of ``decoder_vocab_size`` rows."""

    def __init__(self, config: MarianConfig) -> None:
        super().__init__(config)
        if config.share_encoder_decoder_embeddings:
            self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
            self._tied_weights_keys = shared_embedding_ties()
        else:
            self._tied_weights_keys = {}
        self.encoder = MarianEncoder(config)
        self.decoder = MarianDecoder(config)
        self.tie_weights()


class MarianMTModel(Seq2SeqLMWithLogitsBias, MarianPreTrainedModel):
    """Target-vocabulary logits: ``lm_head`` (tied to the decoder's embeddings) plus ``final_logits_bias``."""

    def __init__(self, config: MarianConfig) -> None:
        super().__init__(config)
        self.model = MarianModel(config)
        if config.share_encoder_decoder_embeddings:
            target_vocab = config.vocab_size
            self._tied_weights_keys = {"lm_head.weight": "model.shared.weight", **shared_embedding_ties("model.")}
        else:
            target_vocab = config.decoder_vocab_size
            self._tied_weights_keys = {"lm_head.weight": "model.decoder.embed_tokens.weight"}
        self._build_lm_head(config, target_vocab)
        self.tie_weights()
