"""GenerationConfig: transformers' generation settings, read from and written to ``generation_config.json``.

Like transformers 5, a field left unset is None and takes its default (``DEFAULTS``) when generation runs, so a
checkpoint's ``generation_config.json`` and the caller's keyword arguments layer cleanly.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from ..config import pop_hub_kwargs, read_json

GENERATION_CONFIG_NAME = "generation_config.json"

# Defaults applied when neither the checkpoint nor the caller sets a field (transformers' values).
DEFAULTS: dict[str, Any] = {
    "max_length": 20,
    "max_new_tokens": None,
    "min_length": 0,
    "min_new_tokens": None,
    "do_sample": False,
    "num_beams": 1,
    "temperature": 1.0,
    "top_k": 50,
    "top_p": 1.0,
    "min_p": None,
    "typical_p": 1.0,
    "repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "num_return_sequences": 1,
    "use_cache": True,
    "pad_token_id": None,
    "bos_token_id": None,
    "eos_token_id": None,
    "stop_strings": None,
    "output_scores": False,
    "output_logits": False,
    "return_dict_in_generate": False,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "top_h": None,
    "length_penalty": 1.0,
    "early_stopping": False,
    "renormalize_logits": False,
    "remove_invalid_values": False,
    "sequence_bias": None,
    "guidance_scale": None,
    "max_time": None,
    "cache_implementation": None,
    "decoder_start_token_id": None,
    "output_attentions": False,
    "output_hidden_states": False,
    "encoder_repetition_penalty": 1.0,
    "encoder_no_repeat_ngram_size": 0,
    "exponential_decay_length_penalty": None,
}

# Fields transformers knows that hugkit does not act on yet: accepted when unset or at their default,
# refused (NotImplementedError naming them) otherwise, so a setting is never silently ignored.
UNSUPPORTED = ("guidance_scale", "output_attentions", "output_hidden_states")
# Accepted and without effect: hugkit chooses the cache itself (a static cache sized for the call).
IGNORED = ("use_cache", "cache_implementation")

# Other generate()/GenerationConfig names transformers accepts: passing one (not None) raises NotImplementedError
# rather than the TypeError an unknown name gets, so the message says "not yet" instead of "misspelt".
TRANSFORMERS_ONLY = (
    "synced_gpus", "assistant_model", "assistant_tokenizer",
    "negative_prompt_ids", "negative_prompt_attention_mask", "use_model_defaults", "custom_generate",
    "low_memory", "penalty_alpha", "dola_layers", "diversity_penalty",
    "num_beam_groups", "constraints", "force_words_ids", "prefill_chunk_size", "watermarking_config",
    "compile_config", "disable_compile", "token_healing", "prompt_lookup_num_tokens", "max_matching_ngram_size",
    "num_assistant_tokens", "num_assistant_tokens_schedule", "assistant_confidence_threshold", "cache_config",
    "max_cache_len", "continuous_batching_config", "use_mtp", "is_assistant", "assistant_early_exit",
    "assistant_lookbehind", "target_lookbehind", "assistant_ensemble_weight", "speculation_type",
)

# Bookkeeping keys that appear in generation_config.json files.
_META_KEYS = ("transformers_version", "_from_model_config")


class GenerationConfig:
    def __init__(self, **kwargs: Any) -> None:
        for key in DEFAULTS:
            setattr(self, key, None)
        self._extra: dict[str, Any] = {}
        self.update(**kwargs)
        self.validate()

    # --- setting fields ---------------------------------------------------------------------------
    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set known fields; keep unknown ones aside (so they round-trip) and return them, as transformers does."""
        unused = {}
        for key, value in kwargs.items():
            if key in DEFAULTS:
                setattr(self, key, copy.deepcopy(value))
            else:
                unused[key] = value
                self._extra[key] = value
        return unused

    def get(self, name: str) -> Any:
        """The value generation uses: the field if set, else transformers' default."""
        value = getattr(self, name)
        return DEFAULTS[name] if value is None else value

    def eos_token_ids(self) -> list[int]:
        eos = self.eos_token_id
        if eos is None:
            return []
        return [int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos])]

    # --- validation -------------------------------------------------------------------------------
    def validate(self) -> None:
        """Refuse values no generation could use, with the field, the value and the accepted range."""

        def check(name: str, ok, expected: str) -> None:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) and expected != "a bool" or not ok(value)):
                raise ValueError(f"GenerationConfig.{name} should be {expected}, found {value!r}.")

        is_int = lambda v: isinstance(v, int)  # noqa: E731
        is_num = lambda v: isinstance(v, (int, float))  # noqa: E731
        check("max_new_tokens", lambda v: is_int(v) and v > 0, "a positive int (how many tokens to add)")
        check("max_length", lambda v: is_int(v) and v > 0, "a positive int (prompt + new tokens)")
        check("min_new_tokens", lambda v: is_int(v) and v >= 0, "an int >= 0")
        check("min_length", lambda v: is_int(v) and v >= 0, "an int >= 0")
        check("num_return_sequences", lambda v: is_int(v) and v >= 1, "an int >= 1")
        check("num_beams", lambda v: is_int(v) and v >= 1, "an int >= 1")
        check("top_k", lambda v: is_int(v) and v >= 0, "an int >= 0 (0 disables top-k)")
        check("top_p", lambda v: is_num(v) and 0.0 < v <= 1.0, "a float in (0, 1]")
        check("min_p", lambda v: is_num(v) and 0.0 <= v <= 1.0, "a float in [0, 1]")
        check("temperature", lambda v: is_num(v) and v >= 0.0, "a float >= 0 (> 0 when sampling)")
        check("repetition_penalty", lambda v: is_num(v) and v > 0.0, "a float > 0 (1.0 = no penalty)")
        check("no_repeat_ngram_size", lambda v: is_int(v) and v >= 0, "an int >= 0 (0 disables it)")
        check("do_sample", lambda v: isinstance(v, bool), "a bool")
        check("max_time", lambda v: is_num(v) and v > 0, "a number of seconds > 0")
        check("length_penalty", is_num, "a float (> 0 favours longer beams, < 0 shorter ones)")
        check("stop_strings", lambda v: isinstance(v, str) and v or isinstance(v, (list, tuple)) and len(v) > 0
              and all(isinstance(s, str) and s for s in v), "a non-empty string or a list of them")
        for name in ("pad_token_id", "bos_token_id"):
            check(name, is_int, "an int token id")
        check("eos_token_id", lambda v: is_int(v) or (isinstance(v, (list, tuple)) and all(map(is_int, v))),
              "an int token id or a list of them")
        if self.get("do_sample") and self.temperature is not None and self.temperature <= 0.0:
            raise ValueError(
                f"GenerationConfig.temperature should be > 0 when sampling, found {self.temperature!r}. "
                "For deterministic output use do_sample=False (greedy) instead of temperature=0."
            )
        copies, beams = self.get("num_return_sequences"), self.get("num_beams")
        if copies > 1 and beams == 1 and not self.get("do_sample"):
            raise ValueError(
                f"num_return_sequences={copies} needs do_sample=True or num_beams >= {copies}: greedy decoding "
                "would return the same sequence every time."
            )
        if copies > beams > 1:
            raise ValueError(
                f"num_return_sequences ({copies}) should be at most num_beams ({beams}): beam search returns its "
                f"best beams. Set num_beams={copies} or more."
            )

    def check_supported(self) -> None:
        used = [
            name for name in UNSUPPORTED
            if getattr(self, name) is not None and getattr(self, name) != DEFAULTS[name]
        ]
        if used:
            raise NotImplementedError(
                f"hugkit's generate does not support {', '.join(f'{n}={getattr(self, n)!r}' for n in used)} yet. "
                "Supported: greedy, sampling and beam search with transformers' logits processors and stopping "
                "criteria, return_dict_in_generate with output_scores/output_logits; not classifier-free guidance "
                "(guidance_scale) nor per-step attentions/hidden states (output_attentions/output_hidden_states)."
            )

    # --- construction and serialisation -----------------------------------------------------------
    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> "GenerationConfig":
        return cls(**{**config_dict, **kwargs})

    @classmethod
    def from_model_config(cls, model_config: Any) -> "GenerationConfig":
        """Token ids (and any generation fields older configs carry) from a model config."""
        values = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        # Every generation field the model config sets, as transformers reads it (a max_length equal to the default
        # still counts as set: it then bounds the whole sequence rather than the new tokens).
        picked = {k: v for k, v in values.items() if k in DEFAULTS and v is not None}
        config = cls(**picked)
        config._extra["_from_model_config"] = True
        return config

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name: str | os.PathLike, config_file_name: str | None = None, **kwargs: Any
    ) -> "GenerationConfig":
        hub_kwargs = pop_hub_kwargs(kwargs)
        from ..hub import resolve

        folder = resolve(pretrained_model_name, **hub_kwargs)
        data = read_json(Path(folder) / (config_file_name or GENERATION_CONFIG_NAME), what="generation config")
        return cls.from_dict(data, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = {k: copy.deepcopy(getattr(self, k)) for k in DEFAULTS if getattr(self, k) is not None}
        out.update({k: v for k, v in self._extra.items() if k != "transformers_version"})
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory: str | os.PathLike, config_file_name: str | None = None) -> None:
        directory = Path(save_directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / (config_file_name or GENERATION_CONFIG_NAME)).write_text(self.to_json_string(), encoding="utf-8")

    def copy(self) -> "GenerationConfig":
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"GenerationConfig {self.to_json_string()}"
