"""Token-level timestamps for Whisper: align each generated token with the audio through the cross-attention of the
alignment heads (``generation_config.alignment_heads``), smoothed by a median filter and aligned by dynamic time
warping (OpenAI's method, as transformers' ``_extract_token_timestamps`` computes it).

The cross-attention weights come from one teacher-forced decoder pass over the generated sequences (every token but
the last), which gives the weights transformers collects step by step during decoding.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def median_filter(inputs: torch.Tensor, filter_width: int) -> torch.Tensor:
    """Median over a sliding window of ``filter_width`` (odd) along the last axis, edges reflected."""
    if filter_width <= 0 or filter_width % 2 != 1:
        raise ValueError(
            f"median_filter_width should be a positive odd number, found {filter_width!r} (config.median_filter_width)."
        )
    pad = filter_width // 2
    if inputs.shape[-1] <= pad:
        return inputs
    padded = F.pad(inputs, (pad, pad, 0, 0), mode="reflect")
    return padded.unfold(-1, filter_width, 1).sort()[0][..., pad]


def dynamic_time_warping(cost_matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cheapest monotonic path through ``cost_matrix`` (tokens x frames): (token indices, frame indices).

    Ties go to the diagonal step only when it is strictly cheapest, then to the token step, else the frame step
    (OpenAI's and transformers' rule, which decides the path on flat stretches). The accumulated costs are float32,
    as there. Cells on one anti-diagonal depend only on the two before it, so each diagonal is one vector step.
    """
    rows, columns = cost_matrix.shape
    cost = np.full((rows + 1, columns + 1), np.inf, dtype=np.float32)
    trace = -np.ones((rows + 1, columns + 1), dtype=np.float32)
    cost[0, 0] = 0
    for diagonal in range(2, rows + columns + 1):
        i = np.arange(max(1, diagonal - columns), min(rows, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        diagonal_step = (c0 < c1) & (c0 < c2)
        token_step = ~diagonal_step & (c1 < c0) & (c1 < c2)
        best = np.where(diagonal_step, c0, np.where(token_step, c1, c2))
        cost[i, j] = cost_matrix[i - 1, j - 1] + best
        trace[i, j] = np.where(diagonal_step, 0, np.where(token_step, 1, 2))
    i, j = rows, columns
    trace[0, :] = 2
    trace[:, 0] = 1
    text_indices, time_indices = [], []
    steps = trace.tolist()
    while i > 0 or j > 0:
        text_indices.append(i - 1)
        time_indices.append(j - 1)
        step = steps[i][j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        else:
            j -= 1
    return np.array(text_indices)[::-1], np.array(time_indices)[::-1]


def _normalized(weights: torch.Tensor, filter_width: int) -> torch.Tensor:
    """Standardise each head's weights over the tokens, median-filter over time, average the heads."""
    std = torch.std(weights, dim=-2, keepdim=True, unbiased=False)
    mean = torch.mean(weights, dim=-2, keepdim=True)
    return median_filter((weights - mean) / std, filter_width).mean(dim=-3)


def token_timestamps(
    cross_attentions: tuple[torch.Tensor, ...],
    alignment_heads: list[list[int]],
    num_input_ids: int,
    filter_width: int,
    num_frames: torch.Tensor | list[int] | int | None = None,
    time_precision: float = 0.02,
) -> torch.Tensor:
    """Seconds at which each token of the sequences starts, ``(rows, length)`` float32.

    ``cross_attentions``: per decoder layer ``(rows, heads, length - 1, encoder positions)``, the decoder reading the
    sequences but their last token. The decoder prompt (``num_input_ids`` tokens) gets 0.0; the last token repeats the
    time of the one before it. ``num_frames``: mel frames of real audio per row (the rest of the window is padding,
    which the alignment ignores), or None to use the whole window.
    """
    weights = torch.stack([cross_attentions[layer][:, head] for layer, head in alignment_heads]).permute(1, 0, 2, 3)
    rows, length = weights.shape[0], weights.shape[2] + 1
    timestamps = torch.zeros((rows, length), dtype=torch.float32, device=weights.device)
    per_row_frames = None
    if num_frames is not None:
        frames = torch.as_tensor(num_frames).reshape(-1).tolist()
        if len(set(frames)) == 1:
            weights = weights[..., : int(frames[0]) // 2]
        else:
            per_row_frames = np.repeat(frames, rows // len(frames)).tolist()
    weights = weights[:, :, num_input_ids:, :]
    if weights.shape[2] == 0:  # only one token was generated: nothing to align
        return timestamps
    if per_row_frames is None:
        weights = _normalized(weights, filter_width)
    for row in range(rows):
        if per_row_frames is not None:
            matrix = _normalized(weights[row, ..., : int(per_row_frames[row]) // 2], filter_width)
        else:
            matrix = weights[row]
        text_indices, time_indices = dynamic_time_warping(-matrix.cpu().double().numpy())
        jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
        jump_times = time_indices[jumps] * time_precision
        timestamps[row] = torch.cat([
            torch.zeros(num_input_ids), torch.tensor(jump_times), torch.tensor([jump_times[-1]]),
        ]).to(timestamps.device)
    return timestamps
