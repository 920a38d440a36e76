"""mT5: T5 v1.1 with a 250k multilingual vocabulary. The modules are T5's (``t5.py``); only the config's
defaults differ, and transformers' mT5 never scales the decoder output before ``lm_head``."""

from __future__ import annotations

from typing import Any

from .t5 import T5Config, T5EncoderModel, T5ForConditionalGeneration, T5Model


class MT5Config(T5Config):
    model_type = "mt5"
    defaults = {
        **T5Config.defaults,
        "vocab_size": 250112,
        "d_ff": 1024,
        "num_layers": 8,
        "num_heads": 6,
        "feed_forward_proj": "gated-gelu",
        "decoder_start_token_id": 0,
    }

    def __init__(self, **kwargs: Any) -> None:
        # transformers' MT5ForConditionalGeneration has no such switch; a stored value is ignored there too.
        kwargs["scale_decoder_outputs"] = False
        super().__init__(**kwargs)


class MT5Model(T5Model):
    config_class = MT5Config


class MT5ForConditionalGeneration(T5ForConditionalGeneration):
    config_class = MT5Config


class MT5EncoderModel(T5EncoderModel):
    config_class = MT5Config
