"""The UNet's stages: down blocks (resnets, optional spatial transformers, a stride-2 downsampler), the middle
block, and up blocks (resnets over the concatenated skip connections, optional transformers, an upsampler).

Block names, arguments and attribute names (``resnets``, ``attentions``, ``downsamplers``, ``upsamplers``) are
diffusers'. Only the blocks Stable Diffusion 1.x/2.x/XL use are implemented; ``get_down_block`` / ``get_up_block``
/ ``get_mid_block`` raise a clear error for any other name.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .resnet import Downsample2D, ResnetBlock2D, Upsample2D
from .transformer_2d import Transformer2DModel

DOWN_BLOCKS = ("DownBlock2D", "CrossAttnDownBlock2D")
MID_BLOCKS = ("UNetMidBlock2DCrossAttn",)
UP_BLOCKS = ("UpBlock2D", "CrossAttnUpBlock2D")


def _per_layer(value: int | Sequence[int], num_layers: int) -> list[int]:
    return [value] * num_layers if isinstance(value, int) else list(value)


def _resnet(in_channels: int, out_channels: int, temb_channels: int, eps: float, groups: int, act: str,
            dropout: float, time_scale_shift: str, output_scale_factor: float = 1.0,
            groups_out: int | None = None) -> ResnetBlock2D:
    return ResnetBlock2D(
        in_channels=in_channels, out_channels=out_channels, temb_channels=temb_channels, eps=eps, groups=groups,
        groups_out=groups_out, dropout=dropout, time_embedding_norm=time_scale_shift, non_linearity=act,
        output_scale_factor=output_scale_factor,
    )


def _transformer(num_heads: int, channels: int, num_layers: int, cross_attention_dim: int, groups: int,
                 use_linear_projection: bool, only_cross_attention: bool, upcast_attention: bool) -> Transformer2DModel:
    if channels % num_heads:
        raise ValueError(
            f"A block with {channels} channels cannot be split into {num_heads} attention heads; in UNet configs "
            "`attention_head_dim` is the number of heads per block and must divide block_out_channels."
        )
    return Transformer2DModel(
        num_heads, channels // num_heads, in_channels=channels, num_layers=num_layers,
        cross_attention_dim=cross_attention_dim, norm_num_groups=groups, use_linear_projection=use_linear_projection,
        only_cross_attention=only_cross_attention, upcast_attention=upcast_attention,
    )


class DownBlock2D(nn.Module):
    """``num_layers`` resnets, then an optional stride-2 conv downsampler; returns every intermediate state."""

    has_cross_attention = False

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float = 0.0,
                 num_layers: int = 1, resnet_eps: float = 1e-6, resnet_time_scale_shift: str = "default",
                 resnet_act_fn: str = "swish", resnet_groups: int = 32, output_scale_factor: float = 1.0,
                 add_downsample: bool = True, downsample_padding: int = 1) -> None:
        super().__init__()
        self.resnets = nn.ModuleList(
            _resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, resnet_eps, resnet_groups,
                    resnet_act_fn, dropout, resnet_time_scale_shift, output_scale_factor)
            for i in range(num_layers)
        )
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, use_conv=True, out_channels=out_channels,
                                        padding=downsample_padding, name="op")])
            if add_downsample else None
        )

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        states: list[torch.Tensor] = []
        for resnet in self.resnets:
            hidden_states = resnet(hidden_states, temb)
            states.append(hidden_states)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            states.append(hidden_states)
        return hidden_states, tuple(states)


class CrossAttnDownBlock2D(nn.Module):
    """Like ``DownBlock2D`` with a spatial transformer after each resnet."""

    has_cross_attention = True

    def __init__(self, in_channels: int, out_channels: int, temb_channels: int, dropout: float = 0.0,
                 num_layers: int = 1, transformer_layers_per_block: int | Sequence[int] = 1,
                 resnet_eps: float = 1e-6, resnet_time_scale_shift: str = "default", resnet_act_fn: str = "swish",
                 resnet_groups: int = 32, num_attention_heads: int = 1, cross_attention_dim: int = 1280,
                 output_scale_factor: float = 1.0, downsample_padding: int = 1, add_downsample: bool = True,
                 use_linear_projection: bool = False, only_cross_attention: bool = False,
                 upcast_attention: bool = False) -> None:
        super().__init__()
        self.num_attention_heads = num_attention_heads
        layers = _per_layer(transformer_layers_per_block, num_layers)
        self.resnets = nn.ModuleList(
            _resnet(in_channels if i == 0 else out_channels, out_channels, temb_channels, resnet_eps, resnet_groups,
                    resnet_act_fn, dropout, resnet_time_scale_shift, output_scale_factor)
            for i in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            _transformer(num_attention_heads, out_channels, layers[i], cross_attention_dim, resnet_groups,
                         use_linear_projection, only_cross_attention, upcast_attention)
            for i in range(num_layers)
        )
        self.downsamplers = (
            nn.ModuleList([Downsample2D(out_channels, use_conv=True, out_channels=out_channels,
                                        padding=downsample_padding, name="op")])
            if add_downsample else None
        )

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None,
                encoder_hidden_states: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                cross_attention_kwargs: dict[str, Any] | None = None,
                encoder_attention_mask: torch.Tensor | None = None,
                additional_residuals: torch.Tensor | None = None,
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        states: list[torch.Tensor] = []
        for i, (resnet, attn) in enumerate(zip(self.resnets, self.attentions)):
            hidden_states = resnet(hidden_states, temb)
            hidden_states = attn(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 cross_attention_kwargs=cross_attention_kwargs, attention_mask=attention_mask,
                                 encoder_attention_mask=encoder_attention_mask)
            if i == len(self.resnets) - 1 and additional_residuals is not None:
                hidden_states = hidden_states + additional_residuals  # T2I-Adapter features
            states.append(hidden_states)
        if self.downsamplers is not None:
            for downsampler in self.downsamplers:
                hidden_states = downsampler(hidden_states)
            states.append(hidden_states)
        return hidden_states, tuple(states)


class UNetMidBlock2DCrossAttn(nn.Module):
    """resnet, then (transformer, resnet) ``num_layers`` times, at the lowest resolution."""

    has_cross_attention = True

    def __init__(self, in_channels: int, temb_channels: int, out_channels: int | None = None, dropout: float = 0.0,
                 num_layers: int = 1, transformer_layers_per_block: int | Sequence[int] = 1,
                 resnet_eps: float = 1e-6, resnet_time_scale_shift: str = "default", resnet_act_fn: str = "swish",
                 resnet_groups: int = 32, resnet_groups_out: int | None = None, num_attention_heads: int = 1,
                 output_scale_factor: float = 1.0, cross_attention_dim: int = 1280,
                 use_linear_projection: bool = False, upcast_attention: bool = False) -> None:
        super().__init__()
        out_channels = out_channels or in_channels
        groups_out = resnet_groups_out or resnet_groups
        self.num_attention_heads = num_attention_heads
        layers = _per_layer(transformer_layers_per_block, num_layers)
        resnets = [_resnet(in_channels, out_channels, temb_channels, resnet_eps, resnet_groups, resnet_act_fn,
                           dropout, resnet_time_scale_shift, output_scale_factor, groups_out=groups_out)]
        attentions = []
        for i in range(num_layers):
            attentions.append(_transformer(num_attention_heads, out_channels, layers[i], cross_attention_dim,
                                           groups_out, use_linear_projection, False, upcast_attention))
            resnets.append(_resnet(out_channels, out_channels, temb_channels, resnet_eps, groups_out, resnet_act_fn,
                                   dropout, resnet_time_scale_shift, output_scale_factor))
        self.attentions = nn.ModuleList(attentions)
        self.resnets = nn.ModuleList(resnets)

    def forward(self, hidden_states: torch.Tensor, temb: torch.Tensor | None = None,
                encoder_hidden_states: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                cross_attention_kwargs: dict[str, Any] | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden_states = self.resnets[0](hidden_states, temb)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            hidden_states = attn(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 cross_attention_kwargs=cross_attention_kwargs, attention_mask=attention_mask,
                                 encoder_attention_mask=encoder_attention_mask)
            hidden_states = resnet(hidden_states, temb)
        return hidden_states


class UpBlock2D(nn.Module):
    """``num_layers`` resnets, each over the current state concatenated with one skip connection (latest first),
    then an optional nearest-neighbour x2 upsampler with a 3x3 conv."""

    has_cross_attention = False

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, temb_channels: int,
                 resolution_idx: int | None = None, dropout: float = 0.0, num_layers: int = 1,
                 resnet_eps: float = 1e-6, resnet_time_scale_shift: str = "default", resnet_act_fn: str = "swish",
                 resnet_groups: int = 32, output_scale_factor: float = 1.0, add_upsample: bool = True) -> None:
        super().__init__()
        self.resolution_idx = resolution_idx
        self.resnets = nn.ModuleList(
            _resnet((prev_output_channel if i == 0 else out_channels)
                    + (in_channels if i == num_layers - 1 else out_channels),
                    out_channels, temb_channels, resnet_eps, resnet_groups, resnet_act_fn, dropout,
                    resnet_time_scale_shift, output_scale_factor)
            for i in range(num_layers)
        )
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]) if add_upsample else None
        )

    def forward(self, hidden_states: torch.Tensor, res_hidden_states_tuple: tuple[torch.Tensor, ...],
                temb: torch.Tensor | None = None, upsample_size: Sequence[int] | None = None) -> torch.Tensor:
        skips = list(res_hidden_states_tuple)
        for resnet in self.resnets:
            hidden_states = resnet(torch.cat([hidden_states, skips.pop()], dim=1), temb)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


class CrossAttnUpBlock2D(nn.Module):
    """Like ``UpBlock2D`` with a spatial transformer after each resnet."""

    has_cross_attention = True

    def __init__(self, in_channels: int, out_channels: int, prev_output_channel: int, temb_channels: int,
                 resolution_idx: int | None = None, dropout: float = 0.0, num_layers: int = 1,
                 transformer_layers_per_block: int | Sequence[int] = 1, resnet_eps: float = 1e-6,
                 resnet_time_scale_shift: str = "default", resnet_act_fn: str = "swish", resnet_groups: int = 32,
                 num_attention_heads: int = 1, cross_attention_dim: int = 1280, output_scale_factor: float = 1.0,
                 add_upsample: bool = True, use_linear_projection: bool = False,
                 only_cross_attention: bool = False, upcast_attention: bool = False) -> None:
        super().__init__()
        self.resolution_idx = resolution_idx
        self.num_attention_heads = num_attention_heads
        layers = _per_layer(transformer_layers_per_block, num_layers)
        self.resnets = nn.ModuleList(
            _resnet((prev_output_channel if i == 0 else out_channels)
                    + (in_channels if i == num_layers - 1 else out_channels),
                    out_channels, temb_channels, resnet_eps, resnet_groups, resnet_act_fn, dropout,
                    resnet_time_scale_shift, output_scale_factor)
            for i in range(num_layers)
        )
        self.attentions = nn.ModuleList(
            _transformer(num_attention_heads, out_channels, layers[i], cross_attention_dim, resnet_groups,
                         use_linear_projection, only_cross_attention, upcast_attention)
            for i in range(num_layers)
        )
        self.upsamplers = (
            nn.ModuleList([Upsample2D(out_channels, use_conv=True, out_channels=out_channels)]) if add_upsample else None
        )

    def forward(self, hidden_states: torch.Tensor, res_hidden_states_tuple: tuple[torch.Tensor, ...],
                temb: torch.Tensor | None = None, encoder_hidden_states: torch.Tensor | None = None,
                cross_attention_kwargs: dict[str, Any] | None = None, upsample_size: Sequence[int] | None = None,
                attention_mask: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        skips = list(res_hidden_states_tuple)
        for resnet, attn in zip(self.resnets, self.attentions):
            hidden_states = resnet(torch.cat([hidden_states, skips.pop()], dim=1), temb)
            hidden_states = attn(hidden_states, encoder_hidden_states=encoder_hidden_states,
                                 cross_attention_kwargs=cross_attention_kwargs, attention_mask=attention_mask,
                                 encoder_attention_mask=encoder_attention_mask)
        if self.upsamplers is not None:
            for upsampler in self.upsamplers:
                hidden_states = upsampler(hidden_states, upsample_size)
        return hidden_states


# --- factories by name (the strings a UNet config lists) ----------------------------------------------------------
def _block_name(name: str, kind: str, known: Sequence[str]) -> str:
    # diffusers accepts an optional "UNetRes" prefix on down/up block names.
    stripped = name[7:] if isinstance(name, str) and name.startswith("UNetRes") else name
    if stripped not in known:
        raise ValueError(f"Unknown or unsupported {kind} block type {name!r}; hugkit supports: {', '.join(known)}.")
    return stripped


def _check_dual(dual_cross_attention: bool) -> None:
    if dual_cross_attention:
        raise ValueError("dual_cross_attention=True (Versatile Diffusion) is not supported; use False.")


def get_down_block(down_block_type: str, num_layers: int, in_channels: int, out_channels: int, temb_channels: int,
                   add_downsample: bool, resnet_eps: float, resnet_act_fn: str,
                   transformer_layers_per_block: int | Sequence[int] = 1, num_attention_heads: int | None = None,
                   resnet_groups: int | None = None, cross_attention_dim: int | None = None,
                   downsample_padding: int | None = None, dual_cross_attention: bool = False,
                   use_linear_projection: bool = False, only_cross_attention: bool = False,
                   upcast_attention: bool = False, resnet_time_scale_shift: str = "default",
                   dropout: float = 0.0, **_unused: Any) -> nn.Module:
    """The down block a config names (``_unused`` takes arguments diffusers passes that these blocks ignore)."""
    name = _block_name(down_block_type, "down", DOWN_BLOCKS)
    common = dict(num_layers=num_layers, in_channels=in_channels, out_channels=out_channels,
                  temb_channels=temb_channels, dropout=dropout, add_downsample=add_downsample, resnet_eps=resnet_eps,
                  resnet_act_fn=resnet_act_fn, resnet_groups=resnet_groups, downsample_padding=downsample_padding,
                  resnet_time_scale_shift=resnet_time_scale_shift)
    if name == "DownBlock2D":
        return DownBlock2D(**common)
    _check_dual(dual_cross_attention)
    if cross_attention_dim is None:
        raise ValueError("cross_attention_dim must be set for CrossAttnDownBlock2D.")
    return CrossAttnDownBlock2D(**common, transformer_layers_per_block=transformer_layers_per_block,
                                num_attention_heads=num_attention_heads, cross_attention_dim=cross_attention_dim,
                                use_linear_projection=use_linear_projection,
                                only_cross_attention=only_cross_attention, upcast_attention=upcast_attention)


def get_mid_block(mid_block_type: str | None, temb_channels: int, in_channels: int, resnet_eps: float,
                  resnet_act_fn: str, resnet_groups: int, output_scale_factor: float = 1.0,
                  transformer_layers_per_block: int | Sequence[int] = 1, num_attention_heads: int | None = None,
                  cross_attention_dim: int | None = None, dual_cross_attention: bool = False,
                  use_linear_projection: bool = False, upcast_attention: bool = False,
                  resnet_time_scale_shift: str = "default", dropout: float = 0.0,
                  **_unused: Any) -> nn.Module | None:
    """The middle block a config names; ``None`` means the UNet has none."""
    if mid_block_type is None:
        return None
    if mid_block_type not in MID_BLOCKS:
        raise ValueError(
            f"Unknown or unsupported mid block type {mid_block_type!r}; hugkit supports: {', '.join(MID_BLOCKS)} "
            "(or None)."
        )
    _check_dual(dual_cross_attention)
    return UNetMidBlock2DCrossAttn(
        in_channels=in_channels, temb_channels=temb_channels, dropout=dropout,
        transformer_layers_per_block=transformer_layers_per_block, resnet_eps=resnet_eps,
        resnet_time_scale_shift=resnet_time_scale_shift, resnet_act_fn=resnet_act_fn, resnet_groups=resnet_groups,
        num_attention_heads=num_attention_heads, output_scale_factor=output_scale_factor,
        cross_attention_dim=cross_attention_dim, use_linear_projection=use_linear_projection,
        upcast_attention=upcast_attention,
    )


def get_up_block(up_block_type: str, num_layers: int, in_channels: int, out_channels: int,
                 prev_output_channel: int, temb_channels: int, add_upsample: bool, resnet_eps: float,
                 resnet_act_fn: str, resolution_idx: int | None = None,
                 transformer_layers_per_block: int | Sequence[int] = 1, num_attention_heads: int | None = None,
                 resnet_groups: int | None = None, cross_attention_dim: int | None = None,
                 dual_cross_attention: bool = False, use_linear_projection: bool = False,
                 only_cross_attention: bool = False, upcast_attention: bool = False,
                 resnet_time_scale_shift: str = "default", dropout: float = 0.0, **_unused: Any) -> nn.Module:
    """The up block a config names (``_unused`` takes arguments diffusers passes that these blocks ignore)."""
    name = _block_name(up_block_type, "up", UP_BLOCKS)
    common = dict(num_layers=num_layers, in_channels=in_channels, out_channels=out_channels,
                  prev_output_channel=prev_output_channel, temb_channels=temb_channels, resolution_idx=resolution_idx,
                  dropout=dropout, add_upsample=add_upsample, resnet_eps=resnet_eps, resnet_act_fn=resnet_act_fn,
                  resnet_groups=resnet_groups, resnet_time_scale_shift=resnet_time_scale_shift)
    if name == "UpBlock2D":
        return UpBlock2D(**common)
    _check_dual(dual_cross_attention)
    if cross_attention_dim is None:
        raise ValueError("cross_attention_dim must be set for CrossAttnUpBlock2D.")
    return CrossAttnUpBlock2D(**common, transformer_layers_per_block=transformer_layers_per_block,
                              num_attention_heads=num_attention_heads, cross_attention_dim=cross_attention_dim,
                              use_linear_projection=use_linear_projection, only_cross_attention=only_cross_attention,
                              upcast_attention=upcast_attention)
