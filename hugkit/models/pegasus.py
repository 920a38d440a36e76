"""Pegasus (google/pegasus-*): a pre-norm Transformer encoder-decoder with sinusoidal positions, with
transformers' module names so checkpoints load as they are.

Pegasus is assembled from its kin, as in transformers: Marian's embeddings (scaled token embeddings plus the
fixed sinusoidal table, see marian.py), mBART's pre-norm layers (see mbart.py), and a final ``layer_norm`` after
the encoder and after the decoder; the loops, ``run`` and the LM head are ``hugkit.encoder_decoder``'s. The decoder
starts from the pad token (id 0).
"""

from __future__ import annotations

from torch import nn

from ..config import PretrainedConfig
from ..encoder_decoder import EncoderDecoderModel, Seq2SeqLMWithLogitsBias, shared_embedding_ties
from ..modeling_utils import PreTrainedModel
from ..task_heads import Seq2SeqModel
from .marian import MarianDecoder, MarianEncoder
from .mbart import MBartDecoderLayer, MBartEncoderLayer


class PegasusConfig(PretrainedConfig):
    model_type = "pegasus"
    attribute_map = {
        "num_attention_heads": "encoder_attention_heads",
        "hidden_size": "d_model",
        "num_hidden_layers": "encoder_layers",
    }
    defaults = {
        "vocab_size": 50265,
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
        "decoder_start_token_id": 0,
        "scale_embedding": False,
        "pad_token_id": 0,
        "eos_token_id": 1,
        "forced_eos_token_id": 1,
        "is_decoder": False,
        "tie_word_embeddings": True,
    }


class PegasusEncoder(MarianEncoder):
    """Marian's encoder with mBART's pre-norm layers and a ``layer_norm`` after the last one."""

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config, MBartEncoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)


class PegasusDecoder(MarianDecoder):
    """Marian's decoder with mBART's pre-norm layers and a ``layer_norm`` after the last one."""

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config, MBartDecoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)


class PegasusPreTrainedModel(EncoderDecoderModel, PreTrainedModel):
    config_class = PegasusConfig
    base_model_prefix = "model"
    # transformers saves the fixed sinusoidal tables with the weights; hugkit computes them, so the keys are unused.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"embed_positions\.weight$"]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared


class PegasusModel(Seq2SeqModel, PegasusPreTrainedModel):
    _tied_weights_keys = shared_embedding_ties()

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.encoder = PegasusEncoder(config)
        self.decoder = PegasusDecoder(config)
        self.tie_weights()


class PegasusForConditionalGeneration(Seq2SeqLMWithLogitsBias, PegasusPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``."""

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config)
        self.model = PegasusModel(config)
        self._build_lm_head(config, config.vocab_size)
        self.tie_weights()
