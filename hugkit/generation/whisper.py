"""Whisper's ``generate``: transformers' ``WhisperGenerationMixin.generate``, token for token.

One loop serves short and long audio (transformers' sequential algorithm, OpenAI's section 3.8):

1. the forced prompt ``<|startoftranscript|><|lang|><|task|>[<|notimestamps|>]`` from the generation config
   (``language=`` as a code, name or token, or detected; ``task="translate"``), optionally after ``prompt_ids`` or the
   previous window's text (``condition_on_prev_tokens``);
2. each 30-second window (``num_segment_frames`` mel frames) is encoded once and decoded greedily, by sampling or
   by beam search (``num_beams``; not with per-window scores yet) with the suppression rules and, with
   ``return_timestamps``, the timestamp grammar;
3. temperature fallback: a window whose text compresses too well (``compression_ratio_threshold``: looping) or is
   too unlikely (``logprob_threshold``) is decoded again at the next of ``temperature=(0.0, 0.2, ...)``; with
   ``no_speech_threshold`` an unlikely window that is probably silence is skipped;
4. the tokens are cut into segments at timestamp pairs; the next window starts after the last complete segment.

``return_token_timestamps`` adds word-level timing from the cross-attention of ``generation_config.alignment_heads``
(``whisper_alignment``). The settings and the decoder prompts are built in ``whisper_prompt``, the segment
bookkeeping is in ``whisper_segments``, the two Whisper score processors in ``whisper_logits``.

Returns (transformers' formats): a LongTensor of the generated tokens (no prompt, no end-of-text; timestamp tokens
included with ``return_timestamps``), padded with ``pad_token_id``; a dict ``{"sequences", "token_timestamps"?,
"segments"?}`` with ``return_token_timestamps``/``return_segments``; a ``GenerateEncoderDecoderOutput`` (full
sequences, prompt included) with ``return_dict_in_generate`` when one window was decoded without timestamps.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F

from ..kv_cache import EncoderDecoderCache
from ..outputs import BaseModelOutput
from .config import DEFAULTS, GenerationConfig
from .beam_search import beam_search
from .logits import SuppressTokensAtBeginLogitsProcessor, SuppressTokensLogitsProcessor, build_processors
from .mixin import GenerationMixin
from .outputs import GenerateEncoderDecoderOutput
from .stopping import EosTokenCriteria, MaxLengthCriteria, StoppingCriteriaList
from .whisper_alignment import token_timestamps
from .whisper_logits import WhisperNoSpeechDetection, WhisperTimeStampLogitsProcessor
from .whisper_prompt import (
    initial_segments, resolve_settings, set_language_and_task, set_num_frames, set_return_outputs,
    set_return_timestamps, set_thresholds, setting, temperature_list, window_prompt,
)
from .whisper_prompt import init_tokens as init_tokens_for
from .whisper_segments import average_logprob, compression_ratio, pad_segments, split_segments

logger = logging.getLogger(__name__)

def _config_for_window(settings: SimpleNamespace) -> GenerationConfig:
    """A GenerationConfig of the common fields, for the shared processors and stopping rules. The suppression
    lists are Whisper's own processors (with a movable begin index), so they are left out here."""
    fields = {key: getattr(settings, key, None) for key in DEFAULTS}
    fields.update(suppress_tokens=None, begin_suppress_tokens=None, num_return_sequences=1)
    return GenerationConfig(**fields)


class _WindowRunner:
    """One window's decoder over a static cache: the runner interface of ``runners.py`` (``rows``, ``prompt``,
    ``first_logits``, ``step``, ``reorder``) plus Whisper's left-padded decoder prompts (previous text of different
    lengths), whose positions count from each row's first real token as transformers' Whisper does."""

    def __init__(self, model, encoder_hidden: torch.Tensor, decoder_input_ids: torch.Tensor,
                 decoder_attention_mask: torch.Tensor | None, max_length: int) -> None:
        self.model = model
        self.encoder_outputs = BaseModelOutput(last_hidden_state=encoder_hidden)
        self.prompt = decoder_input_ids
        self.rows, self.length = decoder_input_ids.shape
        self.cache = EncoderDecoderCache.for_model(model, self.rows, max_length)
        self.keep = self.positions = self.next_position = None
        if decoder_attention_mask is not None:
            mask = decoder_attention_mask.long()
            self.keep = torch.ones(self.rows, max_length, dtype=torch.long, device=mask.device)
            self.keep[:, : self.length] = mask
            self.positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
            self.next_position = self.positions[:, -1:] + 1

    def _logits(self, tokens: torch.Tensor, positions: torch.Tensor | None, cache_position: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.model(
                encoder_outputs=self.encoder_outputs, decoder_input_ids=tokens, decoder_attention_mask=self.keep,
                decoder_position_ids=positions, past_key_values=self.cache, cache_position=cache_position,
                use_cache=True, logits_to_keep=1,
            )
        return out.logits[:, -1].float()

    def first_logits(self) -> torch.Tensor:
        logits = self._logits(self.prompt, self.positions, torch.arange(self.length, device=self.prompt.device))
        self.cache.seen_tokens = self.length
        return logits

    def step(self, tokens: torch.Tensor) -> torch.Tensor:
        slot = self.cache.seen_tokens
        logits = self._logits(tokens[:, None], self.next_position, torch.tensor([slot], device=tokens.device))
        self.cache.seen_tokens = slot + 1
        if self.next_position is not None:
            self.next_position = self.next_position + 1
        return logits

    def reorder(self, rows: torch.Tensor) -> None:
        self.cache.reorder_cache(rows)
        if self.keep is not None:
            self.keep.copy_(self.keep.index_select(0, rows))
            self.next_position = self.next_position.index_select(0, rows)


def _decode(runner: _WindowRunner, processors: Callable, stopping: Callable, sampling: bool, pad_token_id: int | None,
            has_eos: bool, keep_scores: bool) -> tuple[torch.Tensor, tuple | None]:
    """transformers' greedy/sampling loop: (sequences with the prompt, per-step processed scores or None)."""
    sequences = runner.prompt
    unfinished = torch.ones(runner.rows, dtype=torch.bool, device=sequences.device)
    scores_kept: list[torch.Tensor] = []
    logits = runner.first_logits()
    while True:
        scores = processors(sequences, logits)
        if keep_scores:
            scores_kept.append(scores)
        if sampling:
            tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = torch.argmax(scores, dim=-1)
        if has_eos:
            tokens = torch.where(unfinished, tokens, pad_token_id)
        sequences = torch.cat([sequences, tokens[:, None]], dim=-1)
        unfinished = unfinished & ~stopping(sequences, None)
        if not bool(unfinished.any()):
            break
        logits = runner.step(tokens)
    return sequences, (tuple(scores_kept) if keep_scores else None)


class WhisperGenerationMixin(GenerationMixin):
    """``generate`` and ``detect_language`` for Whisper (see the module docstring for what is returned)."""

    supports_beam_search = True  # the ASR pipeline then uses transformers' default of 5 beams

    def generate(
        self,
        input_features: torch.Tensor | None = None,
        generation_config: GenerationConfig | None = None,
        logits_processor: Iterable[Callable] | None = None,
        stopping_criteria: Iterable[Callable] | None = None,
        prefix_allowed_tokens_fn: Callable | None = None,
        synced_gpus: bool = False,
        return_timestamps: bool | None = None,
        task: str | None = None,
        language: str | list[str] | None = None,
        is_multilingual: bool | None = None,
        prompt_ids: torch.Tensor | None = None,
        prompt_condition_type: str | None = None,
        condition_on_prev_tokens: bool | None = None,
        temperature: float | tuple[float, ...] | list[float] | None = None,
        compression_ratio_threshold: float | None = None,
        logprob_threshold: float | None = None,
        no_speech_threshold: float | None = None,
        num_segment_frames: int | None = None,
        attention_mask: torch.Tensor | None = None,
        time_precision: float = 0.02,
        time_precision_features: float = 0.01,
        return_token_timestamps: bool | None = None,
        return_segments: bool = False,
        return_dict_in_generate: bool | None = None,
        force_unique_generate_call: bool | None = None,
        monitor_progress: Callable[[torch.Tensor], None] | None = None,
        **kwargs: Any,
    ):
        """Transcribe (or translate) log-mel ``input_features`` (batch, mel bins, frames); any length: more than
        30 seconds is decoded window by window (pass ``attention_mask`` for a batch of different lengths)."""
        if "inputs" in kwargs:
            if input_features is not None:
                raise ValueError("Pass the features once: as input_features (or the first argument), or as inputs=.")
            input_features = kwargs.pop("inputs")
        if synced_gpus:
            raise NotImplementedError("synced_gpus is not supported: hugkit runs a model on one device.")
        settings, inputs = resolve_settings(self, generation_config, kwargs)
        encoder_outputs = inputs.get("encoder_outputs")
        if encoder_outputs is not None and not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*tuple(encoder_outputs)[:3])
        if input_features is not None and encoder_outputs is not None:
            raise ValueError("Pass input_features or encoder_outputs, not both.")

        input_stride = self.get_encoder().input_stride
        if num_segment_frames is None:
            num_segment_frames = input_stride * self.config.max_source_positions
        batch_size, total_frames = self._input_size(input_features, encoder_outputs, input_stride)
        is_shortform = total_frames <= num_segment_frames

        return_dict_in_generate = set_return_outputs(settings, return_dict_in_generate, return_token_timestamps,
                                                      logprob_threshold)
        timestamp_begin = set_return_timestamps(settings, return_timestamps, is_shortform, self.config.vocab_size)
        set_language_and_task(settings, language, task, is_multilingual)
        set_num_frames(settings, return_token_timestamps, attention_mask)
        set_thresholds(settings, logprob_threshold, compression_ratio_threshold, no_speech_threshold,
                        condition_on_prev_tokens, prompt_condition_type)
        if settings.pad_token_id is None:
            eos = settings.eos_token_id
            settings.pad_token_id = eos[0] if isinstance(eos, (list, tuple)) else eos
        num_beams = settings.num_beams or 1
        init_tokens = init_tokens_for(self, input_features, encoder_outputs, batch_size, settings, num_segment_frames)
        device = encoder_outputs[0].device if encoder_outputs is not None else input_features.device
        processors, no_speech = self._whisper_processors(settings, logits_processor, init_tokens.shape[1], num_beams,
                                                         device)
        if settings.condition_on_prev_tokens is None:
            settings.condition_on_prev_tokens = False
        temperatures = temperature_list(temperature)
        max_frames, seek = _max_frames_and_seek(batch_size, attention_mask, total_frames, is_shortform)

        copies = settings.num_return_sequences or 1
        if copies > 1:
            if input_features is not None:
                input_features = input_features.repeat_interleave(copies, dim=0)
            if encoder_outputs is not None:
                encoder_outputs = BaseModelOutput(encoder_outputs.last_hidden_state.repeat_interleave(copies, dim=0))
            seek, max_frames = seek.repeat_interleave(copies), max_frames.repeat_interleave(copies)
            init_tokens = init_tokens.repeat_interleave(copies, dim=0)
            settings.num_return_sequences = 1
        cur_bsz = batch_size * copies
        batch_idx_map = list(range(cur_bsz))
        do_condition_on_prev_tokens = [condition_on_prev_tokens for _ in range(cur_bsz)]
        current_segments = initial_segments(prompt_ids, cur_bsz, settings)
        if force_unique_generate_call is None:
            force_unique_generate_call = bool(setting(settings, "force_unique_generate_call"))
        decoder_input_ids_given = inputs.get("decoder_input_ids")
        stopping_criteria = list(stopping_criteria or [])
        if prefix_allowed_tokens_fn is not None:
            settings._prefix_allowed_tokens_fn = prefix_allowed_tokens_fn

        seek_outputs: list[Any] = []
        while bool((seek < max_frames).any()):
            if monitor_progress is not None:
                monitor_progress(torch.stack((seek, max_frames), dim=1))
            input_features, cur_bsz, batch_idx_map = _reduce_batch(input_features, seek, max_frames, cur_bsz,
                                                                   batch_idx_map)
            time_offset = seek.to(torch.float32 if device.type == "mps" else torch.float64) * time_precision / input_stride
            seek_num_frames = (max_frames - seek).clamp(max=num_segment_frames)
            encoder_hidden = self._encode_window(input_features, encoder_outputs, seek, seek_num_frames,
                                                 num_segment_frames, cur_bsz, batch_idx_map)
            if decoder_input_ids_given is not None:
                decoder_input_ids, decoder_attention_mask = decoder_input_ids_given, None
                decoder_input_ids_given = None
            else:
                decoder_input_ids, decoder_attention_mask = window_prompt(
                    cur_bsz, init_tokens, current_segments, batch_idx_map, do_condition_on_prev_tokens, prompt_ids,
                    settings, self.config, device, processors, timestamp_begin,
                )
            self._set_max_length(settings, decoder_input_ids)
            for processor in processors:
                if hasattr(processor, "set_begin_index"):
                    processor.set_begin_index(decoder_input_ids.shape[-1])
            seek_sequences, seek_outputs, should_skip, do_condition_on_prev_tokens = self._generate_with_fallback(
                encoder_hidden, decoder_input_ids, decoder_attention_mask, seek, batch_idx_map, temperatures,
                settings, processors, no_speech, stopping_criteria, return_token_timestamps,
                do_condition_on_prev_tokens,
            )
            for i, seek_sequence in enumerate(seek_sequences):
                prev_i = batch_idx_map[i]
                if should_skip[i]:
                    seek[prev_i] += seek_num_frames[prev_i]
                    continue
                token_times = None
                if return_token_timestamps:
                    token_times = seek_outputs[i]["token_timestamps"]
                segments, seek_by = split_segments(
                    seek_sequence, seek_outputs[i], time_offset[prev_i], timestamp_begin, int(seek_num_frames[prev_i]),
                    time_precision, time_precision_features, input_stride, decoder_input_ids.shape[-1], token_times,
                )
                seek[prev_i] += seek_by
                current_segments[prev_i] += segments
            if force_unique_generate_call:
                break

        final_segments = (
            [row[1:] for row in current_segments]
            if prompt_ids is not None and settings.prompt_condition_type == "first-segment" else current_segments
        )
        # transformers tests the return_timestamps *argument* here (not the setting long-form audio turns on): with
        # return_dict_in_generate and return_timestamps left unset, the last window's outputs are returned stacked
        if return_dict_in_generate and settings.return_dict_in_generate and (force_unique_generate_call or not return_timestamps):
            return _stacked_output(seek_outputs)
        padded = pad_segments(
            final_segments, settings.pad_token_id, device, padding_side="right",
            return_token_timestamps=bool(return_token_timestamps), force_unique_generate_call=force_unique_generate_call,
        )
        if return_dict_in_generate and settings.return_dict_in_generate:
            return_segments = True  # each window's generate output is in its segments' "result"
        elif not return_segments and not return_token_timestamps:
            return padded
        if return_token_timestamps:
            outputs = {"sequences": padded[0], "token_timestamps": padded[1]}
        else:
            outputs = {"sequences": padded}
        if return_segments:
            outputs["segments"] = final_segments
        return outputs

    def generate_tokens(self, *args: Any, **kwargs: Any):
        raise NotImplementedError(
            "Whisper has no token-by-token generator yet: its windows, fallback and segments are decided after each "
            "window. Call generate(input_features, ...) (or the automatic-speech-recognition pipeline)."
        )

    # --- inputs -----------------------------------------------------------------------------------------------------

    def _input_size(self, input_features, encoder_outputs, input_stride: int) -> tuple[int, int]:
        if input_features is not None:
            expected_bins = self.config.num_mel_bins
            if not isinstance(input_features, torch.Tensor) or input_features.dim() != 3 \
                    or input_features.shape[1] != expected_bins:
                found = tuple(input_features.shape) if isinstance(input_features, torch.Tensor) else type(input_features).__name__
                raise ValueError(
                    f"input_features should be log-mel features of shape (batch, {expected_bins}, frames), found "
                    f"{found}. Make them with WhisperFeatureExtractor(audio, sampling_rate=16000, return_tensors='pt')."
                )
            return input_features.shape[0], input_features.shape[-1]
        if encoder_outputs is not None:
            hidden = encoder_outputs.last_hidden_state
            return hidden.shape[0], hidden.shape[1] * input_stride
        raise ValueError("generate() needs input_features (log-mel features) or encoder_outputs.")

    def _encode_window(self, input_features, encoder_outputs, seek, seek_num_frames, num_segment_frames: int,
                       cur_bsz: int, batch_idx_map: list[int]) -> torch.Tensor:
        """The encoder output of each row's current 30-second window (zero-padded features at the end of audio)."""
        if input_features is None:
            return encoder_outputs.last_hidden_state
        pieces = []
        for i in range(cur_bsz):
            prev_i = batch_idx_map[i]
            piece = input_features[i : i + 1, :, seek[prev_i] : seek[prev_i] + seek_num_frames[prev_i]]
            if piece.shape[-1] < num_segment_frames:
                piece = F.pad(piece, (0, num_segment_frames - piece.shape[-1]))
            pieces.append(piece)
        with torch.no_grad():
            return self.get_encoder()(input_features=torch.cat(pieces, dim=0)).last_hidden_state

    # --- the forced prompt --------------------------------------------------------------------------------------------

    def detect_language(
        self,
        input_features: torch.Tensor | None = None,
        encoder_outputs: BaseModelOutput | tuple | None = None,
        generation_config: Any = None,
        num_segment_frames: int = 3000,
    ) -> torch.Tensor:
        """The most likely language token of each row's first window: ``(batch,)`` ids from ``lang_to_id``."""
        if (input_features is None) == (encoder_outputs is None):
            raise ValueError("detect_language needs exactly one of input_features or encoder_outputs.")
        settings = generation_config if generation_config is not None else self.generation_config
        lang_to_id = setting(settings, "lang_to_id") if isinstance(settings, SimpleNamespace) else \
            settings.to_dict().get("lang_to_id")
        if not lang_to_id:
            raise ValueError(
                "This model's generation config has no lang_to_id (its language tokens), so the language cannot be "
                "detected; an English-only checkpoint transcribes English without a language token."
            )
        start = settings.decoder_start_token_id
        if input_features is not None:
            window = input_features[:, :, :num_segment_frames]
            if window.shape[-1] < num_segment_frames:
                window = F.pad(window, (0, num_segment_frames - window.shape[-1]))
            inputs = {"input_features": window}
            batch = input_features.shape[0]
        else:
            inputs = {"encoder_outputs": encoder_outputs}
            batch = encoder_outputs[0].shape[0]
        decoder_input_ids = torch.full((batch, 1), start, dtype=torch.long, device=self.device)
        with torch.no_grad():
            logits = self(**inputs, decoder_input_ids=decoder_input_ids, use_cache=False).logits[:, -1]
        not_language = torch.ones_like(logits[0], dtype=torch.bool)
        not_language[list(lang_to_id.values())] = False
        return logits.masked_fill(not_language, -float("inf")).argmax(-1)

    # --- processors and lengths ---------------------------------------------------------------------------------------

    def _whisper_processors(self, settings: SimpleNamespace, user: Iterable[Callable] | None, begin_index: int,
                            num_beams: int, device) -> tuple[list[Callable], WhisperNoSpeechDetection | None]:
        """[no-speech detection, begin suppression, suppression, timestamp rules] + the user's processors, in
        transformers' order; the common processors and warpers are added per window around these."""
        processors = list(user or [])
        if settings.return_timestamps is True:
            eos = settings.eos_token_id if settings.eos_token_id is not None else settings.bos_token_id
            detect = setting(settings, "_detect_timestamp_from_logprob")
            processors.insert(0, WhisperTimeStampLogitsProcessor(
                settings.no_timestamps_token_id, eos, begin_index, setting(settings, "max_initial_timestamp_index"),
                True if detect is None else detect,
            ))
        if settings.suppress_tokens is not None:
            processors.insert(0, SuppressTokensLogitsProcessor(settings.suppress_tokens, device=device))
            settings.suppress_tokens = None
        if settings.begin_suppress_tokens is not None:
            processors.insert(0, SuppressTokensAtBeginLogitsProcessor(settings.begin_suppress_tokens, begin_index,
                                                                      device=device))
            settings.begin_suppress_tokens = None
        no_speech = None
        if setting(settings, "no_speech_threshold") is not None:
            no_speech = WhisperNoSpeechDetection(settings.no_timestamps_token_id - 1, begin_index, num_beams > 1)
            processors.insert(0, no_speech)
        return processors, no_speech

    def _set_max_length(self, settings: SimpleNamespace, decoder_input_ids: torch.Tensor) -> None:
        """transformers' rule: the window's limit grows by the prompt carried over (never past the decoder's size)."""
        positions = self.config.max_target_positions
        prompt_length = decoder_input_ids.shape[-1]
        max_new = settings.max_new_tokens or 0
        if max_new + prompt_length > positions:
            raise ValueError(
                f"The decoder prompt (start tokens, prompt_ids and previous text) has {prompt_length} tokens and "
                f"max_new_tokens is {max_new}: {max_new + prompt_length} in all, more than Whisper's "
                f"max_target_positions ({positions}). Shorten prompt_ids or lower max_new_tokens."
            )
        carried = min(positions // 2 - 1, prompt_length)
        if settings.max_length is not None and settings.max_new_tokens is None:
            settings.max_length = min(settings.max_length + carried, positions)

    # --- one window ------------------------------------------------------------------------------------------------

    def _decode_window(self, encoder_hidden, decoder_input_ids, decoder_attention_mask, settings: SimpleNamespace,
                       processors: list[Callable], user_stopping: list[Callable]) -> tuple[torch.Tensor, tuple | None]:
        """One decoding of the window's rows: (full sequences, prompt included; per-step scores when kept). The shared
        processors (penalties, length rules) come first, then Whisper's and the user's, then the sampling warpers."""
        prompt_length = decoder_input_ids.shape[1]
        if settings.max_new_tokens is not None:
            max_length = prompt_length + settings.max_new_tokens
        else:
            max_length = settings.max_length
        if prompt_length >= max_length:
            raise ValueError(
                f"The decoder prompt has {prompt_length} tokens, but max_length is {max_length}: nothing is left to "
                "generate. Set max_new_tokens instead (at most max_target_positions minus the prompt)."
            )
        config = _config_for_window(settings)
        processor_list = build_processors(
            config, prompt_length, decoder_input_ids.device, is_encoder_decoder=True, user_processors=processors,
            max_length=max_length, prefix_allowed_tokens_fn=setting(settings, "_prefix_allowed_tokens_fn"),
        )
        eos_ids = config.eos_token_ids()
        stopping = StoppingCriteriaList([MaxLengthCriteria(max_length)])
        if eos_ids:
            stopping.append(EosTokenCriteria(eos_ids))
        for criterion in user_stopping:
            stopping.append(criterion)
        beams = settings.num_beams or 1
        if beams > 1 and not settings.do_sample:
            if settings.return_dict_in_generate:
                raise NotImplementedError(
                    f"num_beams={beams} with per-window scores (return_dict_in_generate, output_scores, "
                    "logprob_threshold, no_speech_threshold or return_token_timestamps) is not supported by hugkit's "
                    "Whisper generate yet; beam search works for plain transcription and timestamps."
                )
            repeat = lambda tensor: None if tensor is None else tensor.repeat_interleave(beams, dim=0)  # noqa: E731
            runner = _WindowRunner(self, repeat(encoder_hidden), repeat(decoder_input_ids),
                                   repeat(decoder_attention_mask), max_length)
            result = beam_search(runner, config, processor_list, stopping, batch_size=decoder_input_ids.shape[0],
                                 max_new=max_length - prompt_length)
            return result.sequences, None
        runner = _WindowRunner(self, encoder_hidden, decoder_input_ids, decoder_attention_mask, max_length)
        keep_scores = bool(settings.return_dict_in_generate and settings.output_scores)
        return _decode(runner, processor_list, stopping, bool(settings.do_sample), settings.pad_token_id,
                       bool(eos_ids), keep_scores)

    def _generate_with_fallback(self, encoder_hidden, decoder_input_ids, decoder_attention_mask, seek, batch_idx_map,
                                temperatures, settings, processors, no_speech, user_stopping,
                                return_token_timestamps, do_condition_on_prev_tokens):
        """Decode the window at the first temperature; rows that fail the quality checks again at the next one."""
        cur_bsz = decoder_input_ids.shape[0]
        sequence_list: list[Any] = [None] * cur_bsz
        output_list: list[Any] = [None] * cur_bsz
        needs_fallback = [False] * cur_bsz
        should_skip = [False] * cur_bsz
        fallback_index_map = list(range(cur_bsz))
        rows_frames = None
        if setting(settings, "num_frames") is not None:
            rows_frames = (settings.num_frames - seek)[batch_idx_map]
        if no_speech is not None:
            no_speech.set_inputs(self._prompt_logits_fn(encoder_hidden, decoder_input_ids, decoder_attention_mask))
        eos = settings.eos_token_id
        for fallback_index, temperature in enumerate(temperatures):
            settings.do_sample = temperature is not None and temperature > 0.0
            settings.temperature = temperature if settings.do_sample else 1.0
            if settings.do_sample:
                settings.num_beams = 1
            sequences, scores = self._decode_window(encoder_hidden, decoder_input_ids, decoder_attention_mask,
                                                    settings, processors, user_stopping)
            frames = None if rows_frames is None else rows_frames[fallback_index_map]
            seek_sequences, seek_outputs = self._postprocess(
                sequences, scores, encoder_hidden, decoder_input_ids, decoder_attention_mask, settings,
                return_token_timestamps, frames,
            )
            new_map, new_hidden, new_ids, new_masks = [], [], [], []
            for i, sequence in enumerate(seek_sequences):
                if sequence[-1] == settings.pad_token_id:  # drop the padding, but keep one EOS when EOS pads
                    paddings = int((sequence == settings.pad_token_id).sum())
                    if settings.pad_token_id == eos:
                        paddings -= 1
                    if paddings != 0:
                        sequence = sequence[:-paddings]
                needs_fallback[i], should_skip[i] = self._need_fallback(sequence, seek_outputs, i, no_speech,
                                                                        settings, temperature)
                if len(sequence) and sequence[-1] == eos:
                    sequence = sequence[:-1]
                sequence_list[fallback_index_map[i]] = sequence
                output_list[fallback_index_map[i]] = seek_outputs[i]
                low_temperature = temperature is None or temperature < 0.5
                do_condition_on_prev_tokens[fallback_index_map[i]] = settings.condition_on_prev_tokens and low_temperature
                if needs_fallback[i]:
                    new_map.append(fallback_index_map[i])
                    new_hidden.append(encoder_hidden[i])
                    new_ids.append(decoder_input_ids[i])
                    if decoder_attention_mask is not None:
                        new_masks.append(decoder_attention_mask[i])
            fallback_index_map = new_map
            if not fallback_index_map or fallback_index == len(temperatures) - 1:
                break
            encoder_hidden, decoder_input_ids = torch.stack(new_hidden), torch.stack(new_ids)
            if decoder_attention_mask is not None:
                decoder_attention_mask = torch.stack(new_masks)
        return sequence_list, output_list, should_skip, do_condition_on_prev_tokens

    def _prompt_logits_fn(self, encoder_hidden, decoder_input_ids, decoder_attention_mask) -> Callable[[], torch.Tensor]:
        """Logits over the window's whole decoder prompt (what the no-speech probability is read from)."""
        positions = None
        if decoder_attention_mask is not None:
            mask = decoder_attention_mask.long()
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)

        def run() -> torch.Tensor:
            return self(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden), decoder_input_ids=decoder_input_ids,
                decoder_attention_mask=decoder_attention_mask, decoder_position_ids=positions, use_cache=False,
            ).logits

        return run

    def _postprocess(self, sequences, scores, encoder_hidden, decoder_input_ids, decoder_attention_mask, settings,
                     return_token_timestamps, frames) -> tuple[torch.Tensor, list[Any]]:
        """(generated tokens per row, each row's window output: its full sequence, or a dict with scores/timings)."""
        start = decoder_input_ids.shape[-1]
        if not settings.return_dict_in_generate:
            return sequences[:, start:], list(sequences)
        times = None
        if return_token_timestamps and setting(settings, "alignment_heads") is not None:
            cross = self._cross_attentions(encoder_hidden, sequences, decoder_attention_mask)
            times = token_timestamps(
                cross, settings.alignment_heads, start, self.config.median_filter_width, frames,
            )
        outputs = []
        for i in range(sequences.shape[0]):
            output: dict[str, Any] = {"sequences": sequences[i]}
            if scores is not None:
                output["scores"] = [step[i] for step in scores]
            if times is not None:
                output["token_timestamps"] = times[i]
            outputs.append(output)
        return sequences[:, start:], outputs

    def _cross_attentions(self, encoder_hidden, sequences, decoder_attention_mask) -> tuple[torch.Tensor, ...]:
        """Each decoder layer's cross-attention weights over the sequences but their last token (teacher forced),
        with the same decoder mask and positions as the decoding had."""
        inputs = sequences[:, :-1]
        mask = positions = None
        if decoder_attention_mask is not None:
            extra = inputs.shape[1] - decoder_attention_mask.shape[1]
            mask = torch.cat([decoder_attention_mask.long(), decoder_attention_mask.new_ones(inputs.shape[0], extra).long()], -1)
            positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        with torch.no_grad():
            out = self(
                encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden), decoder_input_ids=inputs,
                decoder_attention_mask=mask, decoder_position_ids=positions, use_cache=False, output_attentions=True,
            )
        return out.cross_attentions

    def _need_fallback(self, sequence, seek_outputs, index, no_speech, settings, temperature) -> tuple[bool, bool]:
        needs_fallback = should_skip = False
        ratio_threshold = setting(settings, "compression_ratio_threshold")
        if ratio_threshold is not None and compression_ratio(sequence, self.config.vocab_size) > ratio_threshold:
            needs_fallback = True
        logprob_threshold = setting(settings, "logprob_threshold")
        logprob = None
        if logprob_threshold is not None:
            logprob = average_logprob(seek_outputs[index]["scores"], sequence, temperature)
            if logprob < logprob_threshold:
                needs_fallback = True
        if no_speech is not None:
            if logprob < logprob_threshold and no_speech.no_speech_prob[index] > settings.no_speech_threshold:
                needs_fallback, should_skip = False, True
        return needs_fallback, should_skip


# --- settings (transformers' _set_* steps) ------------------------------------------------------------------------------


def _max_frames_and_seek(batch_size, attention_mask, total_frames, is_shortform) -> tuple[torch.Tensor, torch.Tensor]:
    if batch_size > 1 and not is_shortform and attention_mask is None:
        raise ValueError(
            "A batch of long audio (more than 30 seconds) needs attention_mask, to know where each row's audio ends: "
            "get it from the feature extractor with return_attention_mask=True (and padding='longest', "
            "truncation=False)."
        )
    if batch_size > 1 and not is_shortform:
        max_frames = attention_mask.sum(-1).cpu().to(torch.long)
    else:
        max_frames = torch.full((batch_size,), total_frames, dtype=torch.long)
    return max_frames, torch.zeros((batch_size,), dtype=torch.long)


def _reduce_batch(input_features, seek, max_frames, cur_bsz, batch_idx_map):
    """Drop the rows whose audio is fully transcribed."""
    previous = cur_bsz
    kept = []
    for i in range(previous):
        prev_i = batch_idx_map[i]
        if seek[prev_i] >= max_frames[prev_i]:
            cut = i + (cur_bsz - previous)
            cur_bsz -= 1
            if input_features is not None:
                input_features = torch.cat([input_features[:cut], input_features[cut + 1 :]], dim=0)
        else:
            kept.append(prev_i)
    return input_features, cur_bsz, kept


def _stacked_output(seek_outputs: list[Any]) -> Any:
    """One window, no timestamps, return_dict_in_generate: the windows' row outputs stacked back into one."""
    first = seek_outputs[0]
    if isinstance(first, torch.Tensor):
        return GenerateEncoderDecoderOutput(sequences=torch.stack(seek_outputs))
    fields: dict[str, Any] = {"sequences": torch.stack([output["sequences"] for output in seek_outputs])}
    if "scores" in first:
        fields["scores"] = tuple(torch.stack([output["scores"][i] for output in seek_outputs])
                                 for i in range(len(first["scores"])))
    if "token_timestamps" in first:
        fields["token_timestamps"] = torch.stack([output["token_timestamps"] for output in seek_outputs])
        return fields
    return GenerateEncoderDecoderOutput(**fields)
