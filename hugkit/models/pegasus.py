"""Pegasus (google/pegasus-*): a pre-norm Transformer encoder-decoder with sinusoidal positions, with
transformers' module names so checkpoints load as they are.

Pegasus is assembled from its kin, as in transformers: Marian's embeddings (scaled token embeddings plus the
fixed sinusoidal table, see marian.py), mBART's pre-norm layers (see mbart.py), and a final ``layer_norm`` after
the encoder and after the decoder. The decoder starts from the pad token (id 0).
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import PretrainedConfig
from ..kv_cache import EncoderDecoderCache
from ..modeling_utils import PreTrainedModel
from ..outputs import BaseModelOutput, Seq2SeqModelOutput
from ..task_heads import Seq2SeqLM, Seq2SeqModel
from .bart import shift_tokens_right
from .marian import MarianDecoder, MarianEncoder
from .mbart import EncoderDecoderParts, MBartDecoderLayer, MBartEncoderLayer, run_encoder_decoder


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


# Same as marian.MarianEncoder except: mBART's pre-norm layers and a final layer_norm.
class PegasusEncoder(MarianEncoder):
    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config, MBartEncoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden_states)


# Same as marian.MarianDecoder except: mBART's pre-norm layers and a final layer_norm.
class PegasusDecoder(MarianDecoder):
    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config, MBartDecoderLayer)
        self.layer_norm = nn.LayerNorm(config.d_model)

    def final_norm(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden_states)


class PegasusPreTrainedModel(EncoderDecoderParts, PreTrainedModel):
    config_class = PegasusConfig
    base_model_prefix = "model"
    # transformers saves the fixed sinusoidal tables with the weights; hugkit computes them, so the keys are unused.
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"embed_positions\.weight$"]

    def get_input_embeddings(self) -> nn.Embedding:
        return self.base_model.shared


class PegasusModel(Seq2SeqModel, PegasusPreTrainedModel):
    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, config.pad_token_id)
        self.encoder = PegasusEncoder(config)
        self.decoder = PegasusDecoder(config)
        self.tie_weights()

    def run(
        self,
        input_ids: torch.Tensor | None,
        attention_mask: torch.Tensor | None,
        decoder_input_ids: torch.Tensor | None,
        decoder_attention_mask: torch.Tensor | None,
        encoder_outputs: BaseModelOutput | tuple | None,
        inputs_embeds: torch.Tensor | None,
        decoder_inputs_embeds: torch.Tensor | None,
        output_hidden_states: bool,
        output_attentions: bool,
        past_key_values: EncoderDecoderCache | None = None,
        use_cache: bool = False,
        cache_position: torch.Tensor | None = None,
    ) -> Seq2SeqModelOutput:
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            raise ValueError(
                "Pegasus needs decoder inputs: pass decoder_input_ids (they start with the pad token, "
                f"id {self.config.decoder_start_token_id}) or decoder_inputs_embeds; "
                "PegasusForConditionalGeneration also builds them from labels, and generate() from decoder_start_token_id."
            )
        return run_encoder_decoder(
            self, input_ids, attention_mask, decoder_input_ids, decoder_attention_mask, encoder_outputs,
            inputs_embeds, decoder_inputs_embeds, output_hidden_states, output_attentions,
            past_key_values, use_cache, cache_position,
        )


class PegasusForConditionalGeneration(Seq2SeqLM, PegasusPreTrainedModel):
    """Vocabulary logits from the decoder: ``lm_head`` (tied to the shared embeddings) plus ``final_logits_bias``."""

    has_learned_positions = True  # the sinusoidal table has max_position_embeddings rows, no more
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight", **{
        f"model.{k}": f"model.{v}" for k, v in PegasusModel._tied_weights_keys.items()
    }}
    # Some checkpoints were saved without the (all-zero) bias: it then starts at zero, as in transformers.
    _keys_to_ignore_on_load_missing = [r"^final_logits_bias$"]

    def __init__(self, config: PegasusConfig) -> None:
        super().__init__(config)
        self.model = PegasusModel(config)
        self.register_buffer("final_logits_bias", torch.zeros((1, config.vocab_size)))
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.tie_weights()

    def _init_buffers(self, device: torch.device) -> None:
        if self.final_logits_bias.is_meta:  # not in the checkpoint
            self.final_logits_bias = torch.zeros(self.final_logits_bias.shape, device=device, dtype=self.dtype)

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    def head(self, decoded: Seq2SeqModelOutput) -> torch.Tensor:
        return self.lm_head(decoded.last_hidden_state) + self.final_logits_bias
