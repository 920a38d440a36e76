"""AutoencoderKL: the Stable Diffusion VAE (image <-> latents), with diffusers' config fields and weight names.

``encode`` gives a diagonal Gaussian over latents; pipelines sample (or take the mean) and multiply by
``config.scaling_factor`` (after subtracting ``shift_factor`` where set) before the UNet; ``decode`` undoes the
scaling first. Two memory savers, computed exactly as diffusers computes them so results match theirs:
``enable_slicing()`` runs one image of the batch at a time; ``enable_tiling()`` runs overlapping tiles of
``tile_sample_min_size`` pixels (``tile_latent_min_size`` latents) and cross-fades the overlaps linearly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from ...outputs import ModelOutput
from ..configuration import register_to_config
from ..modeling import ModelMixin
from ..utils import Generator, randn_tensor
from .vae_blocks import Decoder, Encoder

# Old diffusers VAEs (before the shared Attention class) named the mid-block attention projections differently.
_LEGACY_ATTENTION_KEY = re.compile(r"^(.*\.mid_block\.attentions\.\d+\.)(query|key|value|proj_attn)\.(weight|bias)$")
_LEGACY_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}
_ATTENTION_PROJECTION = re.compile(r"\.mid_block\.attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$")


class DiagonalGaussianDistribution:
    """The encoder's posterior: ``parameters`` (B, 2C, h, w) split into mean and log-variance (clamped to
    [-30, 20] as in the original code). ``deterministic`` makes it a point mass at the mean."""

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False) -> None:
        self.parameters = parameters
        self.mean, logvar = parameters.chunk(2, dim=1)
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        if deterministic:
            self.std = self.var = torch.zeros_like(self.mean)
        else:
            self.std = torch.exp(0.5 * self.logvar)
            self.var = torch.exp(self.logvar)

    def sample(self, generator: Generator = None) -> torch.Tensor:
        """``mean + std * noise``, the noise drawn like diffusers (same generator, same latents)."""
        noise = randn_tensor(self.mean.shape, generator=generator, device=self.parameters.device,
                             dtype=self.parameters.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self, other: Optional["DiagonalGaussianDistribution"] = None) -> torch.Tensor:
        """KL divergence to ``other`` (default: the standard normal), summed per sample over (C, h, w)."""
        if self.deterministic:
            return torch.Tensor([0.0])
        if other is None:
            terms = self.mean.pow(2) + self.var - 1.0 - self.logvar
        else:
            terms = ((self.mean - other.mean).pow(2) / other.var + self.var / other.var
                     - 1.0 - self.logvar + other.logvar)
        return 0.5 * terms.sum(dim=[1, 2, 3])

    def nll(self, sample: torch.Tensor, dims: Sequence[int] = (1, 2, 3)) -> torch.Tensor:
        """Negative log-likelihood of ``sample``, summed over ``dims``."""
        if self.deterministic:
            return torch.Tensor([0.0])
        log_two_pi = 1.8378770664093453  # log(2 * pi)
        return 0.5 * (log_two_pi + self.logvar + (sample - self.mean).pow(2) / self.var).sum(dim=list(dims))


@dataclass
class AutoencoderKLOutput(ModelOutput):
    latent_dist: Optional[DiagonalGaussianDistribution] = None


@dataclass
class DecoderOutput(ModelOutput):
    sample: Optional[torch.Tensor] = None
    commit_loss: Optional[torch.Tensor] = None


class AutoencoderKL(ModelMixin):
    """Variational autoencoder with a KL-regularised latent space (Stable Diffusion 1.x/2.x/XL's VAE)."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        down_block_types: Sequence[str] = ("DownEncoderBlock2D",),
        up_block_types: Sequence[str] = ("UpDecoderBlock2D",),
        block_out_channels: Sequence[int] = (64,),
        layers_per_block: int = 1,
        act_fn: str = "silu",
        latent_channels: int = 4,
        norm_num_groups: int = 32,
        sample_size: int | Sequence[int] = 32,
        scaling_factor: float = 0.18215,
        shift_factor: float | None = None,
        latents_mean: Sequence[float] | None = None,
        latents_std: Sequence[float] | None = None,
        force_upcast: bool = True,
        use_quant_conv: bool = True,
        use_post_quant_conv: bool = True,
        mid_block_add_attention: bool = True,
    ) -> None:
        super().__init__()
        _check_layout(down_block_types, up_block_types, block_out_channels, norm_num_groups)
        self.encoder = Encoder(
            in_channels=in_channels,
            out_channels=latent_channels,
            down_block_types=down_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            act_fn=act_fn,
            double_z=True,
            mid_block_add_attention=mid_block_add_attention,
        )
        self.decoder = Decoder(
            in_channels=latent_channels,
            out_channels=out_channels,
            up_block_types=up_block_types,
            block_out_channels=block_out_channels,
            layers_per_block=layers_per_block,
            norm_num_groups=norm_num_groups,
            act_fn=act_fn,
            mid_block_add_attention=mid_block_add_attention,
        )
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1) if use_quant_conv else None
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1) if use_post_quant_conv else None

        self.use_slicing = False
        self.use_tiling = False
        # Tiles are square; a (height, width) sample_size uses its first entry, as diffusers' latent tile does.
        tile = sample_size[0] if isinstance(sample_size, (list, tuple)) else sample_size
        self.tile_sample_min_size = int(tile)
        self.tile_latent_min_size = int(tile / 2 ** (len(block_out_channels) - 1))
        self.tile_overlap_factor = 0.25

    # --- loading --------------------------------------------------------------------------------
    def load_state_items(self, items: Any, *, device: torch.device | str = "cpu", **kwargs: Any) -> None:
        super().load_state_items(items, device=device, **kwargs)
        if torch.device(device).type == "cpu":
            # oneDNN's CPU convolutions take ~20% less time on channels-last weights (it then keeps activations in
            # that layout too); same results to float rounding. Other devices keep the layout as loaded.
            self.to(memory_format=torch.channels_last)

    # --- legacy checkpoints ---------------------------------------------------------------------
    @classmethod
    def _convert_checkpoint_key(cls, key: str) -> str:
        match = _LEGACY_ATTENTION_KEY.match(key)
        if match is None:
            return key
        prefix, name, kind = match.groups()
        return f"{prefix}{_LEGACY_ATTENTION_NAMES[name]}.{kind}"

    @classmethod
    def _convert_checkpoint_tensor(cls, key: str, tensor: torch.Tensor) -> torch.Tensor:
        # The original VAE code used 1x1 convolutions for these projections; a linear layer holds the same matrix.
        if tensor.ndim == 4 and tensor.shape[2:] == (1, 1) and _ATTENTION_PROJECTION.search(key):
            return tensor[:, :, 0, 0]
        return tensor

    # --- memory savers --------------------------------------------------------------------------
    def enable_slicing(self) -> None:
        """Encode/decode one image of the batch at a time (less memory, same result)."""
        self.use_slicing = True

    def disable_slicing(self) -> None:
        self.use_slicing = False

    def enable_tiling(self) -> None:
        """Encode/decode large images in overlapping tiles (bounded memory; overlaps are cross-faded, so the
        result differs slightly from untiled)."""
        self.use_tiling = True

    def disable_tiling(self) -> None:
        self.use_tiling = False

    # --- encode ---------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Images (B, in_channels, H, W), roughly in [-1, 1] -> ``latent_dist`` over (B, latent_channels, h, w)."""
        self._check_input(x, self.config.in_channels, "encode", "images")
        self._check_image_size(x)
        if self.use_slicing and x.shape[0] > 1:
            moments = torch.cat([self._encode(one) for one in x.split(1)])
        else:
            moments = self._encode(x)
        posterior = DiagonalGaussianDistribution(moments.contiguous())
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    def _encode(self, x: torch.Tensor) -> torch.Tensor:
        if self.use_tiling and max(x.shape[-2:]) > self.tile_sample_min_size:
            return self._tiled_encode(x)
        moments = self.encoder(x)
        return self.quant_conv(moments) if self.quant_conv is not None else moments

    def _tiled_encode(self, x: torch.Tensor) -> torch.Tensor:
        tile_in = self.tile_sample_min_size
        stride = int(tile_in * (1 - self.tile_overlap_factor))
        blend = int(self.tile_latent_min_size * self.tile_overlap_factor)
        keep = self.tile_latent_min_size - blend
        grid = [
            [self._encode_tile(x[:, :, i : i + tile_in, j : j + tile_in]) for j in range(0, x.shape[3], stride)]
            for i in range(0, x.shape[2], stride)
        ]
        return _stitch(grid, blend, keep)

    def _encode_tile(self, tile: torch.Tensor) -> torch.Tensor:
        moments = self.encoder(tile)
        return self.quant_conv(moments) if self.quant_conv is not None else moments

    def tiled_encode(self, x: torch.Tensor, return_dict: bool = True) -> AutoencoderKLOutput | tuple:
        """Encode in tiles regardless of ``enable_tiling`` (diffusers' public, now-deprecated entry point)."""
        self._check_input(x, self.config.in_channels, "tiled_encode", "images")
        self._check_image_size(x)
        posterior = DiagonalGaussianDistribution(self._tiled_encode(x).contiguous())
        return AutoencoderKLOutput(latent_dist=posterior) if return_dict else (posterior,)

    # --- decode ---------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor, return_dict: bool = True, generator: Generator = None) -> DecoderOutput | tuple:
        """Latents (B, latent_channels, h, w), already divided by ``scaling_factor`` -> images (B, out_channels,
        8h, 8w for the SD layout). ``generator`` is accepted for diffusers' signature; decoding draws no noise."""
        self._check_input(z, self.config.latent_channels, "decode", "latents")
        if self.use_slicing and z.shape[0] > 1:
            images = torch.cat([self._decode(one) for one in z.split(1)])
        else:
            images = self._decode(z)
        images = images.contiguous()  # the default layout, whatever the convolutions ran in
        return DecoderOutput(sample=images) if return_dict else (images,)

    def _decode(self, z: torch.Tensor) -> torch.Tensor:
        if self.use_tiling and max(z.shape[-2:]) > self.tile_latent_min_size:
            return self._tiled_decode(z)
        return self._decode_tile(z)

    def _decode_tile(self, z: torch.Tensor) -> torch.Tensor:
        if self.post_quant_conv is not None:
            z = self.post_quant_conv(z)
        return self.decoder(z)

    def _tiled_decode(self, z: torch.Tensor) -> torch.Tensor:
        tile_in = self.tile_latent_min_size
        stride = int(tile_in * (1 - self.tile_overlap_factor))
        blend = int(self.tile_sample_min_size * self.tile_overlap_factor)
        keep = self.tile_sample_min_size - blend
        grid = [
            [self._decode_tile(z[:, :, i : i + tile_in, j : j + tile_in]) for j in range(0, z.shape[3], stride)]
            for i in range(0, z.shape[2], stride)
        ]
        return _stitch(grid, blend, keep)

    def tiled_decode(self, z: torch.Tensor, return_dict: bool = True) -> DecoderOutput | tuple:
        """Decode in tiles regardless of ``enable_tiling``."""
        self._check_input(z, self.config.latent_channels, "tiled_decode", "latents")
        images = self._tiled_decode(z).contiguous()
        return DecoderOutput(sample=images) if return_dict else (images,)

    # --- both -----------------------------------------------------------------------------------
    def forward(
        self,
        sample: torch.Tensor,
        sample_posterior: bool = False,
        return_dict: bool = True,
        generator: Generator = None,
    ) -> DecoderOutput | tuple:
        """Encode, take the posterior's mean (or a sample with ``sample_posterior``), decode."""
        posterior = self.encode(sample).latent_dist
        z = posterior.sample(generator=generator) if sample_posterior else posterior.mode()
        images = self.decode(z).sample
        return DecoderOutput(sample=images) if return_dict else (images,)

    def _check_input(self, x: Any, channels: int, method: str, what: str) -> None:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"AutoencoderKL.{method} expects a torch.Tensor of {what}, got {type(x).__name__}.")
        if x.ndim != 4 or x.shape[1] != channels:
            raise ValueError(
                f"AutoencoderKL.{method} expects {what} of shape (batch, {channels}, height, width), got "
                f"{tuple(x.shape)}. The model's config has {channels} channels here"
                + ("; add a batch dimension with x[None]." if x.ndim == 3 and x.shape[0] == channels else ".")
            )
        if x.dtype != self.dtype:
            raise TypeError(
                f"AutoencoderKL.{method} got {what} in {x.dtype} but the model weights are {self.dtype}; "
                f"convert with x.to({self.dtype}) (or the model with .to(dtype))."
            )

    def _check_image_size(self, x: torch.Tensor) -> None:
        # Each stride-2 downsampling needs at least 2 pixels; below that torch fails deep inside a conv/GroupNorm.
        smallest = 2 ** (len(self.config.block_out_channels) - 1)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(
                f"AutoencoderKL.encode needs images at least {smallest}x{smallest} pixels for its "
                f"{len(self.config.block_out_channels)} levels, got {x.shape[-2]}x{x.shape[-1]}."
            )


def _check_layout(
    down_block_types: Sequence[str], up_block_types: Sequence[str], block_out_channels: Sequence[int], groups: int
) -> None:
    levels = len(block_out_channels)
    if levels == 0 or len(down_block_types) != levels or len(up_block_types) != levels:
        raise ValueError(
            "AutoencoderKL needs one down block and one up block per entry of block_out_channels; got "
            f"{len(down_block_types)} down_block_types, {len(up_block_types)} up_block_types and "
            f"block_out_channels={list(block_out_channels)}."
        )
    bad = [c for c in block_out_channels if c % groups]
    if bad:
        raise ValueError(
            f"block_out_channels {list(block_out_channels)} must all be divisible by norm_num_groups={groups} "
            f"(GroupNorm splits channels into equal groups); {bad} are not."
        )


def _blend_weights(extent: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Linear cross-fade weights (fading out, fading in) over ``extent`` rows. Computed in float64 and rounded
    once, as diffusers' per-row Python floats are, so tiled results match theirs."""
    ramp = torch.arange(extent, dtype=torch.float64, device=like.device) / extent
    return (1 - ramp).to(like.dtype), ramp.to(like.dtype)


def _blend_rows(above: torch.Tensor, below: torch.Tensor, extent: int) -> torch.Tensor:
    """Cross-fade the last ``extent`` rows of ``above`` into the first rows of ``below`` (diffusers' blend_v)."""
    extent = min(above.shape[2], below.shape[2], extent)
    if extent <= 0:
        return below
    fade_out, fade_in = _blend_weights(extent, below)
    head = above[:, :, -extent:] * fade_out[:, None] + below[:, :, :extent] * fade_in[:, None]
    return torch.cat([head, below[:, :, extent:]], dim=2)


def _blend_columns(left: torch.Tensor, right: torch.Tensor, extent: int) -> torch.Tensor:
    """Cross-fade the last ``extent`` columns of ``left`` into the first columns of ``right`` (blend_h)."""
    extent = min(left.shape[3], right.shape[3], extent)
    if extent <= 0:
        return right
    fade_out, fade_in = _blend_weights(extent, right)
    head = left[:, :, :, -extent:] * fade_out + right[:, :, :, :extent] * fade_in
    return torch.cat([head, right[:, :, :, extent:]], dim=3)


def _stitch(grid: list[list[torch.Tensor]], blend: int, keep: int) -> torch.Tensor:
    """Blend each tile with its (already blended) upper and left neighbours, crop to ``keep`` and concatenate.

    diffusers blends in place, so a tile's neighbours are the blended versions; the grid is updated as it goes to
    reproduce that exactly."""
    rows = []
    for i, row in enumerate(grid):
        for j in range(len(row)):
            if i > 0:
                row[j] = _blend_rows(grid[i - 1][j], row[j], blend)
            if j > 0:
                row[j] = _blend_columns(row[j - 1], row[j], blend)
        rows.append(torch.cat([tile[:, :, :keep, :keep] for tile in row], dim=3))
    return torch.cat(rows, dim=2)
