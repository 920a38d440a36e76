"""The bookkeeping of Whisper's sequential (long-form) transcription, as pure functions over tensors.

- ``split_segments``: cut one window's tokens into segments at its timestamp pairs and say how far to seek;
- ``pad_segments``: concatenate each audio's segments into one row (the output, or the previous text that
  conditions the next window) and pad the rows to one length;
- ``compression_ratio`` and ``average_logprob``: the two quality measures of the temperature fallback.

A *segment* is transformers' dict: ``start``/``end`` (seconds, 0-d float64 tensors), ``tokens`` (the segment's ids,
timestamps included, no prompt and no end-of-text), ``idxs`` (where those tokens sit in the window's full sequence,
prompt included: start inclusive, end exclusive), ``result`` (that window's output for the row: its full sequence,
or a dict of ``sequences``/``scores``/``token_timestamps`` when those were asked for) and, with token timestamps,
``token_timestamps`` (seconds from the start of the audio).
"""

from __future__ import annotations

import math
import zlib
from typing import Any

import torch
import torch.nn.functional as F


def split_segments(
    tokens: torch.Tensor,
    result: Any,
    time_offset: torch.Tensor,
    timestamp_begin: int,
    window_frames: int,
    time_precision: float,
    time_precision_features: float,
    input_stride: int,
    prompt_length: int,
    token_times: torch.Tensor | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Segments of one window's generated ``tokens`` and the number of mel frames to seek forward.

    Two timestamps in a row end a segment. When the window ends on a single timestamp, the speech ended there and
    the whole window is consumed; when it ends on a pair (or mid-segment), the next window starts at the last
    closing timestamp, so that cut-off speech is decoded again. A window without timestamp pairs is one segment.
    ``token_times``: the row's token timestamps (full sequence, prompt included), or None.
    """
    is_timestamp = [token >= timestamp_begin for token in tokens.tolist()]
    single_timestamp_ending = is_timestamp[-2:] == [False, True]
    ends = [i + 1 for i in range(len(is_timestamp) - 1) if is_timestamp[i] and is_timestamp[i + 1]]
    float_type = torch.float32 if tokens.device.type == "mps" else torch.float64
    segments: list[dict[str, Any]] = []
    if ends:
        if single_timestamp_ending:
            ends.append(len(tokens))
        else:
            ends[-1] += 1  # the last closing timestamp stays with its segment
        last = 0
        for index, end in enumerate(ends):
            is_last = index == len(ends) - 1
            sliced = tokens[last:end]
            start_position = sliced[0] - timestamp_begin
            end_position = sliced[-1 if not is_last or single_timestamp_ending else -2] - timestamp_begin
            segment = {
                "start": time_offset + start_position.to(float_type) * time_precision,
                "end": time_offset + end_position.to(float_type) * time_precision,
                "tokens": sliced,
                "idxs": (prompt_length + last, prompt_length + end),
                "result": result,
            }
            if token_times is not None:
                segment["token_timestamps"] = token_times[prompt_length + last : prompt_length + end] + time_offset
            segments.append(segment)
            last = end
        if single_timestamp_ending:
            seek_by = window_frames
        else:
            seek_by = (tokens[last - 2].item() - timestamp_begin) * input_stride
        return segments, int(seek_by)
    positions = [i for i, flag in enumerate(is_timestamp) if flag]
    end_position: Any = int(window_frames * time_precision_features / time_precision)
    if positions and tokens[positions[-1]] != timestamp_begin:  # one timestamp, not a pair: the text ends there
        end_position = (tokens[positions[-1]] - timestamp_begin).to(float_type)
    segment = {
        "start": time_offset,
        "end": time_offset + end_position * time_precision,
        "tokens": tokens,
        "idxs": (prompt_length, prompt_length + len(tokens)),
        "result": result,
    }
    if token_times is not None:
        segment["token_timestamps"] = token_times[prompt_length : prompt_length + len(tokens)] + time_offset
    return [segment], int(window_frames)


def _result_sequences(result: Any) -> torch.Tensor:
    return result if isinstance(result, torch.Tensor) else result["sequences"]


def pad_segments(
    segments_per_row: list[list[dict[str, Any]] | None],
    pad_token_id: int,
    device: torch.device,
    padding_side: str = "right",
    bos_token_tensor: torch.Tensor | None = None,
    cut_off_length: int | None = None,
    return_token_timestamps: bool = False,
    force_unique_generate_call: bool = False,
    skip_ending_double_timestamps: bool = False,
    timestamp_begin: int | None = None,
    pad_to: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """One row per audio: its segments' tokens joined, padded with ``pad_token_id`` on ``padding_side``.

    For the output (``padding_side="right"``), with ``return_token_timestamps`` also the matching token timestamps
    (padded with each row's last time). For the previous text of the next window (``padding_side="left"``):
    ``bos_token_tensor`` (``<|startofprev|>``) first, only the last ``cut_off_length`` tokens, and a segment that
    ends on a timestamp pair loses its last timestamp (``skip_ending_double_timestamps``). ``pad_to``: pad to this
    length instead of the longest row. A row without segments is None (or an empty list).
    ``force_unique_generate_call``: one window was decoded, return its full sequences as they were.
    """
    if force_unique_generate_call:
        results = [row[0]["result"] for row in segments_per_row]
        sequences = torch.stack([_result_sequences(result) for result in results])
        if return_token_timestamps:
            return sequences, torch.stack([result["token_timestamps"] for result in results])
        return sequences
    rows: list[torch.Tensor] = []
    times: list[torch.Tensor] = []
    for segments in segments_per_row:
        if segments:
            pieces = []
            for segment in segments:
                ids = segment["tokens"]
                if skip_ending_double_timestamps and len(ids) > 2 and ids[-2] >= timestamp_begin:
                    ids = ids[:-1]
                pieces.append(ids)
            row = torch.cat(pieces, dim=-1)
            if return_token_timestamps:
                row_times = torch.cat(
                    [segment["result"]["token_timestamps"][segment["idxs"][0] : segment["idxs"][1]] for segment in segments],
                    dim=-1,
                )
            if cut_off_length is not None:
                row = row[-cut_off_length:]
                if return_token_timestamps:
                    row_times = row_times[-cut_off_length:]
            if bos_token_tensor is not None:
                row = torch.cat([bos_token_tensor, row])
                if return_token_timestamps:
                    row_times = torch.cat([torch.zeros_like(bos_token_tensor, dtype=row_times.dtype), row_times])
        elif bos_token_tensor is not None:
            row = bos_token_tensor
            row_times = torch.zeros(bos_token_tensor.shape, device=device)
        else:
            row = torch.zeros(0, dtype=torch.long, device=device)
            row_times = torch.zeros(0, device=device)
        rows.append(row)
        if return_token_timestamps:
            times.append(row_times)
    length = pad_to if pad_to is not None else max((len(row) for row in rows), default=0)
    for i, row in enumerate(rows):
        missing = length - len(row)
        pad = (0, missing) if padding_side == "right" else (missing, 0)
        rows[i] = F.pad(row, pad, value=pad_token_id)
        if return_token_timestamps:
            last = times[i][-1].item() if len(times[i]) else 0.0
            times[i] = F.pad(times[i], pad, value=last)
    sequences = torch.stack(rows)
    if return_token_timestamps:
        return sequences, torch.stack(times)
    return sequences


def compression_ratio(tokens: torch.Tensor, vocab_size: int) -> float:
    """Bytes of the token ids over bytes of their zlib compression: high for repetitive (looping) output."""
    width = int(math.log2(vocab_size) / 8) + 1
    raw = b"".join(token.to_bytes(width, "little") for token in tokens.tolist())
    return len(raw) / len(zlib.compress(raw))


def average_logprob(scores: list[torch.Tensor], tokens: torch.Tensor, temperature: float | None) -> torch.Tensor:
    """Mean log-probability of ``tokens`` under the step ``scores`` (the end-of-text token counts, as in OpenAI's).

    The scores were divided by the temperature when sampling; that is undone first. Summed one token at a time, in
    order, as transformers does (so the threshold comparison sees the same float).
    """
    rescale = temperature if temperature is not None and temperature > 0.0 else 1
    stacked = torch.stack(scores).to(tokens.device)
    if stacked.shape[0] > tokens.shape[0]:
        stacked = stacked[: tokens.shape[0]]
    else:
        tokens = tokens[-stacked.shape[0] :]
    logprobs = F.log_softmax((stacked * rescale).float(), dim=-1).to(stacked.dtype)
    picked = logprobs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1).cpu()
    total = 0
    for i in range(picked.shape[0]):
        total = total + picked[i]
    return total / len(tokens)
