"""Timestep embeddings of the UNet: the sinusoidal features (``Timesteps``) and the MLP over them
(``TimestepEmbedding`` with ``linear_1``/``linear_2``, and LCM's optional ``cond_proj``), named as diffusers names them.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .resnet import get_activation


def get_timestep_embedding(
    timesteps: torch.Tensor,
    embedding_dim: int,
    flip_sin_to_cos: bool = False,
    downscale_freq_shift: float = 1,
    scale: float = 1,
    max_period: int = 10000,
) -> torch.Tensor:
    """Sinusoidal features of 1-D ``timesteps`` (may be fractional): ``(N, embedding_dim)``, float32.

    Frequencies are ``max_period ** (-i / (half - downscale_freq_shift))`` for ``i < half = embedding_dim // 2``;
    the output is ``[sin, cos]`` (``[cos, sin]`` with ``flip_sin_to_cos``), zero-padded by one when the
    dimension is odd. This is the DDPM formulation diffusers uses, to the bit.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must be a 1-D tensor (one per sample), got shape {tuple(timesteps.shape)}.")
    half = embedding_dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=timesteps.device) * -math.log(max_period)
    frequencies = torch.exp(exponent / (half - downscale_freq_shift))
    angles = scale * (timesteps[:, None].float() * frequencies[None, :])
    sin, cos = torch.sin(angles), torch.cos(angles)
    emb = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    if embedding_dim % 2 == 1:
        emb = torch.nn.functional.pad(emb, (0, 1))
    return emb


class Timesteps(nn.Module):
    """``get_timestep_embedding`` as a module (it holds no weights)."""

    def __init__(self, num_channels: int, flip_sin_to_cos: bool, downscale_freq_shift: float, scale: float = 1) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift
        self.scale = scale

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return get_timestep_embedding(
            timesteps, self.num_channels, self.flip_sin_to_cos, self.downscale_freq_shift, self.scale
        )


class TimestepEmbedding(nn.Module):
    """``linear_1 -> act -> linear_2`` (-> ``post_act``); ``cond_proj`` adds a projected condition (LCM's guidance
    embedding) to the input first."""

    def __init__(
        self,
        in_channels: int,
        time_embed_dim: int,
        act_fn: str = "silu",
        out_dim: int | None = None,
        post_act_fn: str | None = None,
        cond_proj_dim: int | None = None,
        sample_proj_bias: bool = True,
    ) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim, bias=sample_proj_bias)
        self.cond_proj = nn.Linear(cond_proj_dim, in_channels, bias=False) if cond_proj_dim is not None else None
        self.act = get_activation(act_fn)
        self.linear_2 = nn.Linear(time_embed_dim, out_dim or time_embed_dim, bias=sample_proj_bias)
        self.post_act = get_activation(post_act_fn) if post_act_fn is not None else None

    def forward(self, sample: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            if self.cond_proj is None:
                raise ValueError(
                    "A timestep condition (timestep_cond) was given, but this model has no cond_proj; "
                    "it is only used by models with time_cond_proj_dim set (LCM)."
                )
            sample = sample + self.cond_proj(condition)
        sample = self.linear_2(self.act(self.linear_1(sample)))
        return self.post_act(sample) if self.post_act is not None else sample
