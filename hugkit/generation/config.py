"""GenerationConfig: transformers' generation settings, read from and written to ``generation_config.json``.

Like transformers 5, a field left unset is None and takes its default (``DEFAULTS``) when generation runs, so a
checkpoint's ``generation_config.json`` and the caller's keyword arguments layer cleanly. Fields beyond ``DEFAULTS``
(a model's own, such as Whisper's ``lang_to_id``/``alignment_heads``, or ``pad_token`` as a doc example writes it)
are plain attributes too, saved and read back; ``update`` sets only fields the config has and returns the rest.
"""

from __future__ import annotations

import copy
import json
import os
from enum import Enum
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

# Bookkeeping keys of generation_config.json files: read, kept out of the repr and of equality.
METADATA_FIELDS = ("_from_model_config", "transformers_version", "_commit_hash", "_original_object_hash")


class GenerationMode(str, Enum):
    """What ``GenerationConfig.get_generation_mode()`` returns: transformers' names for the decoding strategies."""

    GREEDY_SEARCH = "greedy_search"
    SAMPLE = "sample"
    BEAM_SEARCH = "beam_search"
    BEAM_SAMPLE = "beam_sample"
    CONTRASTIVE_SEARCH = "contrastive_search"
    ASSISTED_GENERATION = "assisted_generation"
    DOLA_GENERATION = "dola_generation"
    CONSTRAINED_BEAM_SEARCH = "constrained_beam_search"
    GROUP_BEAM_SEARCH = "group_beam_search"


class GenerationConfig:
    """transformers' ``GenerationConfig``: the fields of ``DEFAULTS`` (None until set), plus any other field a
    checkpoint or the caller gives (Whisper's ``lang_to_id``, ``alignment_heads``, ...), kept as attributes like
    transformers keeps them, saved and loaded back."""

    def __init__(self, **kwargs: Any) -> None:
        for key in DEFAULTS:
            setattr(self, key, None)
        self._from_model_config = kwargs.pop("_from_model_config", None)
        for key in METADATA_FIELDS:
            kwargs.pop(key, None)
        for key, value in kwargs.items():
            if key not in DEFAULTS:
                if self._from_model_config:  # like transformers: a config made from a model config has only its
                    continue  # generation fields, not the model config's other keys
                self._check_field_name(key)
            setattr(self, key, copy.deepcopy(value))
        self.validate()

    @classmethod
    def _check_field_name(cls, key: Any) -> None:
        if not isinstance(key, str) or hasattr(cls, key) or key == "_from_model_config":
            what = "a GenerationConfig method or property" if isinstance(key, str) else f"a {type(key).__name__}"
            raise ValueError(
                f"{key!r} cannot be a GenerationConfig field: it is {what}. Fields are names such as max_new_tokens, "
                "or a checkpoint's own such as lang_to_id."
            )

    def _extra_fields(self) -> dict[str, Any]:
        """Fields beyond ``DEFAULTS``: those a checkpoint or the caller added."""
        return {k: v for k, v in vars(self).items() if k not in DEFAULTS and k != "_from_model_config"}

    # --- setting fields ---------------------------------------------------------------------------
    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the given fields that this config has (``DEFAULTS``' and the ones it was built with); return the
        others, unused, as transformers does (``GenerationConfig(**kwargs)`` adds new fields; ``update`` does not)."""
        unused = {}
        extra = self._extra_fields()
        for key, value in kwargs.items():
            if key in DEFAULTS or key in extra:
                setattr(self, key, copy.deepcopy(value))
            else:
                unused[key] = value
        self.validate()
        return unused

    def get(self, name: str) -> Any:
        """The value generation uses: the field if set, else transformers' default (None for a field without one)."""
        value = getattr(self, name, None)
        return DEFAULTS.get(name) if value is None else value

    def eos_token_ids(self) -> list[int]:
        eos = self.eos_token_id
        if eos is None:
            return []
        return [int(t) for t in (eos if isinstance(eos, (list, tuple)) else [eos])]

    def get_generation_mode(self, assistant_model: Any = None) -> GenerationMode:
        """Which decoding strategy these settings select (transformers' ``GenerationMode``)."""
        if assistant_model is not None or getattr(self, "prompt_lookup_num_tokens", None) is not None:
            return GenerationMode.ASSISTED_GENERATION
        beams, sample = self.get("num_beams"), self.get("do_sample")
        if (getattr(self, "num_beam_groups", None) or 1) > 1:
            return GenerationMode.GROUP_BEAM_SEARCH
        if beams == 1:
            if not sample and (getattr(self, "penalty_alpha", None) or 0) > 0 and self.get("top_k") > 1:
                return GenerationMode.CONTRASTIVE_SEARCH
            if getattr(self, "dola_layers", None) is not None:
                return GenerationMode.DOLA_GENERATION
            return GenerationMode.SAMPLE if sample else GenerationMode.GREEDY_SEARCH
        return GenerationMode.BEAM_SAMPLE if sample else GenerationMode.BEAM_SEARCH

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
        """``config_dict`` with ``kwargs`` over it; ``return_unused_kwargs=True`` also returns what was unused
        (like transformers, nothing: unknown names become fields)."""
        return_unused = kwargs.pop("return_unused_kwargs", False)
        for ignored in ("_from_auto", "_from_pipeline"):
            kwargs.pop(ignored, None)
        config = cls(**{**config_dict, **kwargs})
        unused = config.update(**kwargs)
        return (config, unused) if return_unused else config

    @classmethod
    def from_model_config(cls, model_config: Any) -> "GenerationConfig":
        """Token ids (and any generation fields older configs carry) from a model config."""
        values = model_config.to_dict() if hasattr(model_config, "to_dict") else dict(model_config)
        # Every generation field the model config sets, as transformers reads it (a max_length equal to the default
        # still counts as set: it then bounds the whole sequence rather than the new tokens).
        picked = {k: v for k, v in values.items() if k in DEFAULTS and v is not None}
        config = cls(**picked)
        config._from_model_config = True
        return config

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name: str | os.PathLike, config_file_name: str | os.PathLike | None = None,
        **kwargs: Any,
    ) -> "GenerationConfig":
        """Read ``generation_config.json`` (or ``config_file_name``) from a checkpoint folder or hub id; keyword
        arguments override its fields (``return_unused_kwargs=True``: also return the unused ones)."""
        hub_kwargs = pop_hub_kwargs(kwargs)  # subfolder included
        from ..hub import resolve

        folder = Path(resolve(pretrained_model_name, **hub_kwargs))
        data = read_json(folder / (config_file_name or GENERATION_CONFIG_NAME), what="generation config")
        return cls.from_dict(data, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Every field that is set (extra fields even when None, as transformers writes them)."""
        out = {k: copy.deepcopy(getattr(self, k)) for k in DEFAULTS if getattr(self, k) is not None}
        out.update(copy.deepcopy(self._extra_fields()))
        if self._from_model_config:
            out["_from_model_config"] = True
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        """``to_dict`` (unset fields are already left out)."""
        return self.to_dict()

    def to_json_string(self, use_diff: bool = True, ignore_metadata: bool = False) -> str:
        values = self.to_dict()
        if ignore_metadata:
            for key in METADATA_FIELDS:
                values.pop(key, None)
        return json.dumps(values, indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike, use_diff: bool = True) -> None:
        Path(json_file_path).write_text(self.to_json_string(use_diff), encoding="utf-8")

    def save_pretrained(
        self, save_directory: str | os.PathLike, config_file_name: str | os.PathLike | None = None,
        push_to_hub: bool = False, **kwargs: Any,
    ) -> None:
        """Write ``generation_config.json`` (or ``config_file_name``) into ``save_directory``."""
        if push_to_hub:
            raise NotImplementedError(
                "hugkit does not upload to the Hugging Face Hub (push_to_hub=True). Save locally with "
                "save_pretrained(folder), then upload the folder with huggingface_hub: "
                "HfApi().upload_folder(repo_id=..., folder_path=folder)."
            )
        if kwargs:
            raise TypeError(f"save_pretrained got unexpected keyword argument(s): {', '.join(sorted(kwargs))}.")
        directory = Path(save_directory)
        if directory.is_file():
            raise ValueError(f"save_pretrained needs a folder to write into, but {directory} is a file.")
        self.validate()
        directory.mkdir(parents=True, exist_ok=True)
        self.to_json_file(directory / (config_file_name or GENERATION_CONFIG_NAME))

    def copy(self) -> "GenerationConfig":
        return copy.deepcopy(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GenerationConfig) and (
            self.to_json_string(ignore_metadata=True) == other.to_json_string(ignore_metadata=True)
        )

    def __repr__(self) -> str:
        return f"GenerationConfig {self.to_json_string(ignore_metadata=True)}"
