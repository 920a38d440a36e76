"""Whisper's two score processors, with transformers' names and arithmetic.

- ``WhisperTimeStampLogitsProcessor``: the timestamp grammar of OpenAI's decoder. Timestamps come in pairs (except
  right before the end), never go backwards, the first token is a timestamp no later than
  ``max_initial_timestamp_index``, and when the timestamps together are more likely than any single text token, a
  timestamp it is.
- ``WhisperNoSpeechDetection``: records the probability of the no-speech token at the start of a window, which the
  long-form loop compares with ``no_speech_threshold`` (together with the average log-probability) to skip silence.

Both keep a ``begin_index`` (the length of the decoder prompt: the first generated position), which the long-form
loop moves with ``set_begin_index`` when a window's prompt carries previous text.
"""

from __future__ import annotations

from typing import Callable

import torch

from .logits import LogitsProcessor

NEG_INF = -float("inf")


class WhisperTimeStampLogitsProcessor(LogitsProcessor):
    """Timestamp rules over the tokens generated since ``begin_index``.

    ``no_timestamps_token_id``: ``<|notimestamps|>``; the timestamp tokens follow it (``timestamp_begin`` is the next
    id, ``<|0.00|>``). ``eos_token_id``: text tokens are the ids below it (the special tokens sit between).
    """

    def __init__(
        self,
        no_timestamps_token_id: int,
        eos_token_id: int,
        begin_index: int,
        max_initial_timestamp_index: int | None = None,
        detect_timestamp_from_logprob: bool = True,
    ) -> None:
        if isinstance(eos_token_id, (list, tuple)):
            eos_token_id = eos_token_id[0]
        self.no_timestamps_token_id = no_timestamps_token_id
        self.timestamp_begin = no_timestamps_token_id + 1
        self.eos_token_id = eos_token_id
        self.begin_index = begin_index
        self.max_initial_timestamp_index = max_initial_timestamp_index
        self._detect_timestamp_from_logprob = detect_timestamp_from_logprob

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        begin = self.timestamp_begin
        scores = scores.clone()
        scores[:, self.no_timestamps_token_id] = NEG_INF  # <|notimestamps|> belongs in the prompt only
        lowest_allowed = []
        for row, tokens in enumerate(input_ids.tolist()):
            tokens = tokens[self.begin_index :]
            last_was_timestamp = len(tokens) >= 1 and tokens[-1] >= begin
            penultimate_was_timestamp = len(tokens) < 2 or tokens[-2] >= begin
            if last_was_timestamp:
                if penultimate_was_timestamp:  # a pair just closed: text (or the end) comes next
                    scores[row, begin:] = NEG_INF
                else:  # an opening timestamp needs its closing one (or the end)
                    scores[row, : self.eos_token_id] = NEG_INF
            timestamps = [token for token in tokens if token >= begin]
            if not timestamps:
                lowest_allowed.append(begin)
            elif last_was_timestamp and not penultimate_was_timestamp:
                lowest_allowed.append(timestamps[-1])  # the closing timestamp may repeat the opening one
            else:
                lowest_allowed.append(timestamps[-1] + 1)  # timestamps never go back, nor repeat <|0.00|>
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        lowest = torch.tensor(lowest_allowed, device=scores.device).unsqueeze(-1)
        scores.masked_fill_((vocab >= begin) & (vocab < lowest), NEG_INF)
        if input_ids.shape[1] == self.begin_index:  # the first token is a timestamp, and an early one
            scores[:, :begin] = NEG_INF
            if self.max_initial_timestamp_index is not None:
                scores[:, begin + self.max_initial_timestamp_index + 1 :] = NEG_INF
        if self._detect_timestamp_from_logprob:
            logprobs = torch.log_softmax(scores.float(), dim=-1)
            timestamp_logprob = logprobs[:, begin:].logsumexp(dim=-1)
            max_text_logprob = logprobs[:, :begin].max(dim=-1).values
            pick_timestamp = (timestamp_logprob > max_text_logprob).unsqueeze(-1)
            scores[:, :begin].masked_fill_(pick_timestamp, NEG_INF)
        return scores


class WhisperNoSpeechDetection(LogitsProcessor):
    """At a window's first step, record ``P(no_speech_token)`` per row (``no_speech_prob``); scores pass unchanged.

    The probability is read where OpenAI reads it: at the ``<|startoftranscript|>`` position. With a longer decoder
    prompt (language and task tokens, previous text) that position is inside the prompt, so ``set_inputs`` gives a
    function returning the logits of the whole prompt (one forward over the window's rows); with ``<|startoftranscript|>``
    alone the first step's raw scores are that position's.
    """

    def __init__(self, no_speech_token: int, begin_index: int, scores_is_logprobs: bool = False) -> None:
        self.no_speech_token = no_speech_token
        self.start_of_trans_offset = begin_index  # the prompt length without previous text: SOT + its tags
        self.begin_index = begin_index
        self.is_scores_logprobs = scores_is_logprobs
        self._no_speech_prob: torch.Tensor | list[float] = [0.0]
        self._prompt_logits: Callable[[], torch.Tensor] | None = None

    def set_inputs(self, prompt_logits: Callable[[], torch.Tensor]) -> None:
        """``prompt_logits()``: logits ``(rows, prompt length, vocab)`` of the window's decoder prompt."""
        self._prompt_logits = prompt_logits

    def set_begin_index(self, begin_index: int) -> None:
        self.begin_index = begin_index

    @property
    def no_speech_prob(self) -> torch.Tensor | list[float]:
        return self._no_speech_prob

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if input_ids.shape[1] != self.begin_index:
            return scores
        is_logprobs = self.is_scores_logprobs
        if self.start_of_trans_offset > 1:
            if self._prompt_logits is None:
                raise RuntimeError("WhisperNoSpeechDetection needs set_inputs() before the window is decoded.")
            with torch.no_grad():
                logits = self._prompt_logits()
            no_speech_scores = logits[:, self.begin_index - self.start_of_trans_offset]
            is_logprobs = False
        else:
            no_speech_scores = scores
        probs = no_speech_scores.exp() if is_logprobs else no_speech_scores.float().softmax(dim=-1)
        self._no_speech_prob = probs[:, self.no_speech_token]
        return scores
