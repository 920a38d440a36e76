"""What each Whisper window decodes from: the call's settings and the decoder prompt.

- ``resolve_settings`` layers transformers' defaults, the model's generation config (Whisper's own fields included:
  ``lang_to_id``, ``no_timestamps_token_id``, ``alignment_heads``, ...), a given ``generation_config`` and the
  keyword arguments into one namespace, which the long-form loop then updates as transformers updates its config;
- the ``set_*`` steps settle timestamps, language and task, the fallback thresholds and what the windows keep;
- ``init_tokens`` builds the forced prompt ``<|startoftranscript|><|lang|><|task|>[<|notimestamps|>]`` per row;
- ``window_prompt`` puts ``<|startofprev|>`` and the previous windows' text (or ``prompt_ids``) before it.
"""

from __future__ import annotations

import copy
import logging
from types import SimpleNamespace
from typing import Any

import torch

from .config import DEFAULTS
from .logits import SuppressTokensLogitsProcessor
from .whisper_languages import TASK_IDS, TO_LANGUAGE_CODE
from .whisper_segments import pad_segments

logger = logging.getLogger(__name__)

# generation_config.json fields of Whisper checkpoints (and generate() settings) beyond the common ones.
WHISPER_FIELDS = (
    "no_timestamps_token_id", "lang_to_id", "task_to_id", "is_multilingual", "alignment_heads",
    "max_initial_timestamp_index", "prev_sot_token_id", "forced_decoder_ids", "return_timestamps", "language", "task",
    "condition_on_prev_tokens", "logprob_threshold", "compression_ratio_threshold", "no_speech_threshold",
    "prompt_condition_type", "return_token_timestamps", "force_unique_generate_call", "median_filter_width",
    "_detect_timestamp_from_logprob",
)
# generate() keyword arguments that are model inputs, not settings.
MODEL_INPUTS = ("encoder_outputs", "decoder_input_ids")
NOT_SUPPORTED = ("assistant_model", "streamer", "output_attentions", "output_hidden_states", "output_logits")


def resolve_settings(model, generation_config: Any, kwargs: dict[str, Any]) -> tuple[SimpleNamespace, dict[str, Any]]:
    """The settings of one call: transformers' defaults, under the model's generation config, under the given
    ``generation_config``, under the keyword arguments. Returns (settings, model inputs among the kwargs)."""
    values: dict[str, Any] = dict(DEFAULTS)
    for source in (model.generation_config, generation_config):
        if source is None:
            continue
        as_dict = source.to_dict() if hasattr(source, "to_dict") else dict(source)
        values.update({k: copy.deepcopy(v) for k, v in as_dict.items() if v is not None})
    inputs: dict[str, Any] = {}
    unknown = []
    for key, value in kwargs.items():
        if key in MODEL_INPUTS:
            inputs[key] = value
        elif key in NOT_SUPPORTED:
            if value not in (None, False):
                raise NotImplementedError(
                    f"hugkit's Whisper generate does not support {key}={value!r} yet. Token timestamps "
                    "(return_token_timestamps=True) give the cross-attention alignment."
                )
        elif key in DEFAULTS or key in WHISPER_FIELDS or key in values:
            values[key] = value
        else:
            unknown.append(key)
    if unknown:
        raise TypeError(
            f"generate() got unexpected keyword argument(s): {', '.join(sorted(unknown))}. Whisper's generate takes "
            "input_features, attention_mask, language, task, return_timestamps, return_token_timestamps, "
            "temperature, prompt_ids, condition_on_prev_tokens, the fallback thresholds and GenerationConfig fields."
        )
    values.pop("transformers_version", None)
    return SimpleNamespace(**values), inputs


def setting(settings: SimpleNamespace, name: str) -> Any:
    """A setting, or None when neither the checkpoint nor the call has it (older configs lack Whisper's fields)."""
    return getattr(settings, name, None)


def temperature_list(temperature) -> list[float | None]:
    """``temperature`` as the list of temperatures to try (one value, or the fallback sequence)."""
    return list(temperature) if isinstance(temperature, (list, tuple)) else [temperature]


def set_return_outputs(settings, return_dict_in_generate, return_token_timestamps, logprob_threshold) -> bool:
    """Whether the caller asked for a dict output; the windows keep scores/timings whenever something needs them."""
    if return_dict_in_generate is None:
        return_dict_in_generate = bool(settings.return_dict_in_generate)
    else:
        settings.return_dict_in_generate = return_dict_in_generate
    settings.return_token_timestamps = return_token_timestamps
    if return_token_timestamps:
        settings.return_dict_in_generate = True
        settings.output_scores = True
    if logprob_threshold is not None:
        settings.return_dict_in_generate = True
        settings.output_scores = True
    return return_dict_in_generate


def set_return_timestamps(settings: SimpleNamespace, return_timestamps: bool | None, is_shortform: bool,
                          vocab_size: int) -> int:
    """Settle return_timestamps (long audio needs them) and return timestamp_begin, the id of <|0.00|>."""
    if return_timestamps is None:
        return_timestamps = setting(settings, "return_timestamps")
    if not is_shortform:
        if return_timestamps is False:
            raise ValueError(
                "The input_features are longer than one 30-second window, which needs long-form generation: it "
                "seeks from window to window by the predicted timestamp tokens. Pass return_timestamps=True (or "
                "leave it unset), or pass at most one window of features."
            )
        return_timestamps = True
    no_timestamps = setting(settings, "no_timestamps_token_id")
    if return_timestamps and no_timestamps is None:
        raise ValueError(
            "Timestamps were asked for, but the generation config has no no_timestamps_token_id (the id of "
            "<|notimestamps|>; the timestamp tokens follow it). Add it to generation_config.json, e.g. "
            "model.generation_config.update(no_timestamps_token_id=50363) for the multilingual vocabulary."
        )
    settings.return_timestamps = return_timestamps
    return no_timestamps + 1 if no_timestamps is not None else vocab_size + 1


def set_language_and_task(settings, language, task, is_multilingual) -> None:
    if is_multilingual is not None:
        if setting(settings, "is_multilingual") is None:
            raise ValueError(
                "is_multilingual= needs a generation config that describes the model's languages (is_multilingual, "
                "lang_to_id, task_to_id), and this one does not. Update generation_config.json from the checkpoint."
            )
        settings.is_multilingual = is_multilingual
    if setting(settings, "is_multilingual") is False and (task is not None or language is not None):
        given = ", ".join(f"{name}={value!r}" for name, value in (("language", language), ("task", task))
                          if value is not None)
        raise ValueError(
            f"This is an English-only Whisper model (generation_config.is_multilingual is False), so it takes no "
            f"language or task; got {given}. It transcribes English as it is: drop those arguments, or use a "
            "multilingual checkpoint (e.g. whisper-tiny rather than whisper-tiny.en) to transcribe or translate other "
            "languages."
        )
    if language is not None:
        if setting(settings, "lang_to_id") is None:
            raise ValueError(
                f"language={language!r} needs the generation config's lang_to_id (the language tokens), which this one "
                "lacks. Update generation_config.json from the checkpoint."
            )
        settings.language = language
    if task is not None:
        if setting(settings, "task_to_id") is None:
            raise ValueError(
                f"task={task!r} needs the generation config's task_to_id (the task tokens), which this one lacks. "
                "Update generation_config.json from the checkpoint."
            )
        settings.task = task


def language_id(language: str, lang_to_id: dict[str, int]) -> int:
    """The token id of a language given as a token (<|de|>), a code (de) or a name (german)."""
    key = language.lower()
    if key in lang_to_id:
        token = key
    elif key in TO_LANGUAGE_CODE:
        token = f"<|{TO_LANGUAGE_CODE[key]}|>"
    elif key in TO_LANGUAGE_CODE.values():
        token = f"<|{key}|>"
    else:
        kind = "codes" if len(key) == 2 else "names"
        choices = sorted(set(TO_LANGUAGE_CODE.values())) if len(key) == 2 else sorted(TO_LANGUAGE_CODE)
        raise ValueError(f"Unknown language {language!r}. Whisper's language {kind}: {', '.join(choices)}.")
    if token not in lang_to_id:
        raise ValueError(
            f"{token} is not among this model's language tokens (generation_config.lang_to_id has "
            f"{', '.join(sorted(lang_to_id))})."
        )
    return lang_to_id[token]


def set_num_frames(settings, return_token_timestamps, attention_mask) -> None:
    if not return_token_timestamps:
        return
    if setting(settings, "alignment_heads") is None:
        raise ValueError(
            "return_token_timestamps=True needs generation_config.alignment_heads (the [layer, head] pairs whose "
            "cross-attention follows the audio), which this model's generation config lacks. Add them to "
            "generation_config.json (OpenAI publishes them per checkpoint)."
        )
    if setting(settings, "task") == "translate":
        logger.info("Token-level timestamps may not be reliable for task 'translate'.")
    settings.num_frames = attention_mask.sum(-1).cpu() if attention_mask is not None else None


def set_thresholds(settings, logprob_threshold, compression_ratio_threshold, no_speech_threshold,
                    condition_on_prev_tokens, prompt_condition_type) -> None:
    for name, value in (("logprob_threshold", logprob_threshold),
                        ("compression_ratio_threshold", compression_ratio_threshold),
                        ("no_speech_threshold", no_speech_threshold),
                        ("condition_on_prev_tokens", condition_on_prev_tokens)):
        setattr(settings, name, value if value is not None else setting(settings, name))
    if settings.no_speech_threshold is not None and settings.logprob_threshold is None:
        raise ValueError(
            "no_speech_threshold skips a window when it is probably silence *and* its average log-probability is below "
            "logprob_threshold, so it needs logprob_threshold too (OpenAI's default pair: no_speech_threshold=0.6, "
            "logprob_threshold=-1.0)."
        )
    allowed = ("first-segment", "all-segments")
    prompt_condition_type = prompt_condition_type or allowed[0]
    if prompt_condition_type not in allowed:
        raise ValueError(f"prompt_condition_type should be one of {list(allowed)}, found {prompt_condition_type!r}.")
    if settings.condition_on_prev_tokens is not True and prompt_condition_type == "all-segments":
        raise ValueError(
            "prompt_condition_type='all-segments' puts prompt_ids before the previous text of every window, so it "
            "needs condition_on_prev_tokens=True."
        )
    settings.prompt_condition_type = prompt_condition_type


def init_tokens(model, input_features, encoder_outputs, batch_size: int, settings: SimpleNamespace,
                num_segment_frames: int) -> torch.Tensor:
    """The forced prompt per row: SOT, then language, task and <|notimestamps|> as the settings ask."""
    lang_to_id = setting(settings, "lang_to_id")
    task_to_id = setting(settings, "task_to_id")
    task = setting(settings, "task")
    language = setting(settings, "language")
    tokens: list[Any] = [settings.decoder_start_token_id]
    if task is None and language is None:  # the older forced_decoder_ids describe the prompt after SOT
        forced = setting(settings, "forced_decoder_ids")
        if forced is None:
            forced = getattr(model.config, "forced_decoder_ids", None)
        if forced:
            forced = [list(pair) for pair in forced]
            if forced[0][0] == 1:
                position = 1
                while forced and forced[0][0] == position:
                    tokens.append(forced[0][1])
                    forced = forced[1:]
                    position += 1
                if forced:
                    raise ValueError(
                        f"forced_decoder_ids {forced} do not follow Whisper's prompt pattern: they should give "
                        "positions 1, 2, 3, ... in order. Use language= and task= instead."
                    )
    language_undefined = len(tokens) <= 1 or tokens[1] is None
    if isinstance(language, (list, tuple)):
        if any(item is None for item in language):
            raise TypeError(
                "language should be None, one language (e.g. 'en') or a list with one per batch row (e.g. "
                "['en', 'fr']); the list given contains None."
            )
        if len(language) != batch_size:
            raise ValueError(
                f"language lists {len(language)} languages, but the batch has {batch_size} rows: give one per row."
            )
        languages = list(language)
    elif language is None:
        languages = [None] * batch_size
    else:
        languages = [language]
    rows = [list(tokens) for _ in languages]
    lang_ids = None
    if language is not None:
        lang_ids = [language_id(item, lang_to_id) for item in languages]
    elif lang_to_id is not None and language_undefined:
        lang_ids = model.detect_language(
            input_features=input_features, encoder_outputs=encoder_outputs, generation_config=settings,
            num_segment_frames=num_segment_frames,
        ).tolist()
    if lang_ids is not None:
        for row, lang_id in zip(rows, lang_ids):
            if len(row) > 1:
                row[1] = lang_id
            else:
                row.append(lang_id)
    no_timestamps = setting(settings, "no_timestamps_token_id")
    for i, row in enumerate(rows):
        if task is not None:
            if task not in TASK_IDS:
                raise ValueError(f"task should be one of {list(TASK_IDS)}, found {task!r}.")
            row.append(task_to_id[task])
        elif language is not None and task_to_id is not None:
            if not any(token in row for token in task_to_id.values()):
                row.append(task_to_id["transcribe"])
        if not settings.return_timestamps and no_timestamps is not None and row[-1] != no_timestamps:
            row.append(no_timestamps)
        elif settings.return_timestamps and row[-1] == no_timestamps:
            row.pop()  # timestamps were asked for: no <|notimestamps|> in the prompt
        rows[i] = [token for token in row if token is not None]
    return torch.as_tensor(rows, dtype=torch.long, device=model.device).expand(batch_size, -1)


def initial_segments(prompt_ids, batch_size, settings) -> list[list[dict[str, Any]]]:
    """With prompt_ids for the first segment only, the prompt's text is a pseudo-segment (dropped from the output)
    that the first window's previous-text conditioning reads."""
    if prompt_ids is not None and settings.prompt_condition_type == "first-segment":
        prev_sot = setting(settings, "prev_sot_token_id")
        text = prompt_ids[1:] if prompt_ids[0] == prev_sot else prompt_ids
        return [[{"tokens": text}] for _ in range(batch_size)]
    return [[] for _ in range(batch_size)]


def window_prompt(cur_bsz, init_tokens, current_segments, batch_idx_map, do_condition_on_prev_tokens, prompt_ids,
                   settings, config, device, processors, timestamp_begin) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The window's decoder prompt: [<|startofprev|> previous text | prompt_ids] + the forced prompt, left-padded,
    with its mask (None when no row carries previous text)."""
    cut_off_length = config.max_target_positions // 2 - 1
    decoder_input_ids = init_tokens[batch_idx_map]
    prev_sot = setting(settings, "prev_sot_token_id")
    if prev_sot is None:
        suppress = next((p.suppress_tokens for p in processors if isinstance(p, SuppressTokensLogitsProcessor)), None)
        prev_sot = suppress[-2] if suppress is not None and len(suppress) >= 2 else None
    if any(do_condition_on_prev_tokens) and len(current_segments[0]) > 0:
        active = [current_segments[i] if do_condition_on_prev_tokens[i] else None for i in batch_idx_map]
        if prompt_ids is not None and settings.prompt_condition_type == "all-segments":
            prev_ids = prompt_ids
        else:
            prev_ids = torch.tensor([int(prev_sot)], device=device) if prev_sot is not None else None
        pad_to = cut_off_length + 1 if settings.cache_implementation == "static" else None
        previous = pad_segments(
            active, settings.pad_token_id, device, padding_side="left", bos_token_tensor=prev_ids,
            cut_off_length=cut_off_length, skip_ending_double_timestamps=True, timestamp_begin=timestamp_begin,
            pad_to=pad_to,
        )
        decoder_input_ids = torch.cat([previous.to(decoder_input_ids.dtype), decoder_input_ids], dim=-1)
        return decoder_input_ids, decoder_input_ids != settings.pad_token_id
    if prompt_ids is not None:
        decoder_input_ids = torch.cat([prompt_ids[None].repeat(decoder_input_ids.shape[0], 1), decoder_input_ids], -1)
    return decoder_input_ids, None
